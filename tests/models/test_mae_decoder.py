from __future__ import annotations

import pytest
import torch
from lightly.models import utils

from lightly_topo.models import MAEDecoder3D, ModelConfigError


def test_predicts_masked_patches_from_kept_tokens() -> None:
    torch.manual_seed(0)
    dec = MAEDecoder3D(
        (2, 2, 2),
        4,
        in_channels=2,
        embed_dim=12,
        decoder_embed_dim=12,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    idx_keep, idx_mask = utils.random_token_mask((3, 9), mask_ratio=0.5)
    x = torch.randn(3, idx_keep.shape[1], 12)
    out = dec(x, idx_keep, idx_mask)
    assert out.shape == (3, idx_mask.shape[1], 4**3 * 2)
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert not torch.allclose(dec(x2, idx_keep, idx_mask), out)
    # another grid than the default one
    idx_keep, idx_mask = utils.random_token_mask((1, 1 + 12), mask_ratio=0.5)
    out = dec(torch.randn(1, idx_keep.shape[1], 12), idx_keep, idx_mask, grid=(1, 3, 4))
    assert out.shape == (1, idx_mask.shape[1], 128)


def test_bad_config() -> None:
    with pytest.raises(ModelConfigError, match="decoder_num_heads"):
        MAEDecoder3D(4, 4, embed_dim=12, decoder_embed_dim=10, decoder_num_heads=3)
