from __future__ import annotations

import pytest
import torch

from lightly_topo.models import InputShapeError, patchify3d, unpatchify3d


def test_round_trip_and_patch_content() -> None:
    x = torch.randn(2, 3, 8, 12, 4)
    patches = patchify3d(x, 4)
    assert patches.shape == (2, 2 * 3 * 1, 64 * 3)
    assert torch.equal(unpatchify3d(patches, 4, (2, 3, 1), channels=3), x)
    # token 4 is grid cell (1, 1, 0) in C order; its first entry is voxel (4, 4, 0), channel 0
    assert patches[0, 4, 0] == x[0, 0, 4, 4, 0]
    assert patches[0, 4, 1] == x[0, 1, 4, 4, 0]
    assert patches[0, 4, 3] == x[0, 0, 4, 4, 1]


def test_bad_sizes() -> None:
    with pytest.raises(InputShapeError, match="not divisible"):
        patchify3d(torch.zeros(1, 1, 8, 8, 6), 4)
    with pytest.raises(InputShapeError, match="do not match"):
        unpatchify3d(torch.zeros(1, 8, 64), 4, (2, 2, 1))
