"""Modality dropout keeps the mask invariants."""

from __future__ import annotations

import pytest
import torch

from lightly_topo.transforms import RandomModalityDropout, TransformInputError


def test_mask_invariants_over_many_draws() -> None:
    drop = RandomModalityDropout(p=1.0)
    image = torch.ones(5, 3, 3, 3)
    mask = torch.tensor([True, True, False, True, True])
    gen = torch.Generator().manual_seed(0)
    kept_counts = set()
    for _ in range(200):
        out, keep = drop(image, mask, generator=gen)
        assert keep.dtype == torch.bool and keep.shape == (5,)
        assert bool(keep.any()), "dropout produced an empty mask"
        assert bool((keep <= mask).all()), "dropout re-enabled a missing modality"
        assert int(keep.sum()) < int(mask.sum())
        assert float(out[~keep].abs().sum()) == 0.0 and bool((out[keep] == 1).all())
        kept_counts.add(int(keep.sum()))
    assert kept_counts == {1, 2, 3}


def test_single_modality_and_p_zero_unchanged() -> None:
    image = torch.ones(3, 2, 2, 2)
    one = torch.tensor([False, True, False])
    _, keep = RandomModalityDropout(p=1.0)(image, one, generator=0)
    assert torch.equal(keep, one)
    full = torch.ones(3, dtype=torch.bool)
    out, keep = RandomModalityDropout(p=0.0)(image, full, generator=0)
    assert torch.equal(keep, full) and torch.equal(out, image)


def test_empty_or_bad_mask_is_an_error() -> None:
    with pytest.raises(TransformInputError, match="at least one"):
        RandomModalityDropout(p=1.0)(torch.ones(2, 2, 2, 2), torch.zeros(2, dtype=torch.bool))
    with pytest.raises(TransformInputError, match=r"\(M,\)"):
        RandomModalityDropout(p=1.0)(torch.ones(2, 2, 2, 2), torch.ones(2))
