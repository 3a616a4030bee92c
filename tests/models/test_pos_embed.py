from __future__ import annotations

import pytest
import torch
from lightly.models import utils

from lightly_topo.models import ModelConfigError, get_3d_sincos_pos_embed, resample_pos_embed_3d
from lightly_topo.models.pos_embed import axis_frequencies


def _blocks(embed_dim: int) -> list[slice]:
    """Channel slices of the D, H and W parts (sin and cos together)."""
    out, start = [], 0
    for num in axis_frequencies(embed_dim):
        out.append(slice(start, start + 2 * num))
        start += 2 * num
    return out


def test_64_tokens_get_a_3d_grid_not_a_2d_one() -> None:
    emb = get_3d_sincos_pos_embed(4, 48).reshape(4, 4, 4, 48)
    d_part, h_part, w_part = (emb[..., s] for s in _blocks(48))
    # each part depends on its own axis only ...
    assert torch.equal(d_part, d_part[:, :1, :1].expand_as(d_part))
    assert torch.equal(h_part, h_part[:1, :, :1].expand_as(h_part))
    assert torch.equal(w_part, w_part[:1, :1, :].expand_as(w_part))
    # ... and varies along it
    for part, axis in ((d_part, 0), (h_part, 1), (w_part, 2)):
        assert (part.diff(dim=axis).abs().sum(-1) > 1e-3).all()
    # Lightly's initialiser reads 64 tokens as an 8x8 2D grid: a different embedding
    lightly_2d = torch.zeros(1, 65, 48)
    utils.initialize_2d_sine_cosine_positional_embedding(lightly_2d, num_prefix_tokens=1)
    assert not torch.allclose(lightly_2d[0, 1:], emb.reshape(64, 48), atol=1e-3)


def test_dot_products_depend_only_on_grid_offset() -> None:
    grid = (3, 4, 5)
    emb = get_3d_sincos_pos_embed(grid, 40, dtype=torch.float64).reshape(*grid, 40)
    shift = (1, 2, 1)
    for p, q in [((0, 0, 0), (1, 1, 3)), ((1, 0, 2), (0, 1, 1)), ((0, 1, 0), (1, 0, 3))]:
        ps = tuple(a + s for a, s in zip(p, shift))
        qs = tuple(a + s for a, s in zip(q, shift))
        assert torch.allclose(emb[p] @ emb[q], emb[ps] @ emb[qs])
    # and different offsets along different axes give different similarities
    assert not torch.isclose(emb[0, 0, 0] @ emb[1, 0, 0], emb[0, 0, 0] @ emb[0, 0, 1])


def test_uneven_split_uses_every_channel_and_prefix_rows_are_zero() -> None:
    assert axis_frequencies(40) == (7, 7, 6)
    emb = get_3d_sincos_pos_embed((2, 3, 4), 40, num_prefix_tokens=2)
    assert emb.shape == (2 + 24, 40)
    assert torch.count_nonzero(emb[:2]) == 0
    assert (emb[2:].abs().sum(0) > 0).all()


@pytest.mark.parametrize("embed_dim", [4, 7, 33])
def test_bad_embed_dim_is_refused(embed_dim: int) -> None:
    with pytest.raises(ModelConfigError, match="embed_dim"):
        get_3d_sincos_pos_embed(4, embed_dim)


def test_resample_keeps_constant_embedding() -> None:
    pos = torch.ones(1, 8, 6) * torch.arange(6.0)
    out = resample_pos_embed_3d(pos, (2, 2, 2), (3, 4, 2))
    assert out.shape == (1, 24, 6)
    assert torch.allclose(out, torch.ones(1, 24, 6) * torch.arange(6.0))
