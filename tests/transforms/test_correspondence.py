"""matched_tokens pairs the tokens whose centres coincide in the original volume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transform_volumes import coordinate_volume

from lightly_topo.transforms import (
    RandomAffine3D,
    RandomCrop3D,
    RandomElastic3D,
    RandomFlip3D,
    RandomResizedCrop3D,
    RandomRotate90_3D,
    SpatialCompose3D,
    TransformInputError,
    matched_tokens,
)
from lightly_topo.transforms.grid import matrix_grid

SHAPE = (24, 24, 24)


def _image_centres(image: torch.Tensor, stride: int) -> torch.Tensor:
    """Token centres read from the voxel values of a coordinate volume: (N, 3)."""
    pooled = F.avg_pool3d(image[None].double(), stride)[0]
    return pooled.flatten(1).T


def test_views_of_coordinate_volume_match_coinciding_centres() -> None:
    compose = SpatialCompose3D([RandomCrop3D(12), RandomFlip3D(p=0.5), RandomRotate90_3D(p=0.7)])
    volume = coordinate_volume((16, 16, 16))
    found_pairs = {1: 0, 2: 0}
    for seed in range(4):
        a = compose(volume, generator=2 * seed)
        b = compose(volume, generator=2 * seed + 1)
        for stride in (1, 2):
            n = (12 // stride) ** 3
            m = matched_tokens(a.grid, b.grid, stride)
            assert m.index_b.shape == (n,) and m.valid.dtype == torch.bool
            ca, cb = _image_centres(a.image, stride), _image_centres(b.image, stride)
            dist = torch.cdist(ca, cb)
            nearest = dist.amin(1)
            # index_b is a nearest token of B, as read from the voxel values.
            torch.testing.assert_close(dist[torch.arange(n), m.index_b], nearest, atol=1e-4, rtol=0)
            torch.testing.assert_close(m.distance.double(), nearest, atol=1e-4, rtol=0)
            coincide = nearest < 1e-4
            assert bool(m.valid[coincide].all())
            # Same scale, integer grids: valid exactly where the centres coincide.
            assert torch.equal(m.valid, coincide)
            found_pairs[stride] += int(coincide.sum())
    assert found_pairs[1] > 500


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nearest_search_equals_brute_force_on_deformed_views(seed: int) -> None:
    compose = SpatialCompose3D(
        [
            RandomResizedCrop3D(12, scale=(0.2, 0.6)),
            RandomAffine3D(degrees=20, scale=0.15, shear=0.05),
            RandomElastic3D(num_control_points=4, max_displacement=1.0),
        ]
    )
    volume = coordinate_volume(SHAPE)
    a = compose(volume, generator=seed)
    b = compose(volume, generator=seed + 100)
    for stride in (1, 3):
        m = matched_tokens(a.grid, b.grid, stride)
        ca = F.avg_pool3d(a.grid[None].double(), stride)[0].flatten(1).T
        cb = F.avg_pool3d(b.grid[None].double(), stride)[0].flatten(1).T
        brute = torch.cdist(ca, cb).amin(1)
        # Local search: exact where it matters (valid pairs), never better than brute force.
        assert bool((m.distance.double() >= brute - 1e-4).all())
        close = brute < 0.4 * stride
        torch.testing.assert_close(m.distance.double()[close], brute[close], atol=1e-4, rtol=0)


def test_different_scales_match_containing_token() -> None:
    fine = matrix_grid(torch.eye(4, dtype=torch.float64), (8, 8, 8))
    coarse = matrix_grid(
        torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64)), (4, 4, 4)
    )
    m = matched_tokens(fine, coarse, 2)  # fine tokens (4^3) inside coarse tokens (2^3)
    assert bool(m.valid.all())
    idx = torch.stack(torch.meshgrid(*[torch.arange(4)] * 3, indexing="ij")).flatten(1)
    expected = ((idx[0] // 2) * 2 + idx[1] // 2) * 2 + idx[2] // 2
    assert torch.equal(m.index_b, expected)
    back = matched_tokens(coarse, fine, 2)
    assert bool(back.valid.all())
    idx2 = torch.stack(torch.meshgrid(*[torch.arange(2)] * 3, indexing="ij")).flatten(1) * 2
    assert torch.equal(back.index_b, (idx2[0] * 4 + idx2[1]) * 4 + idx2[2])


def test_field_of_view_rule() -> None:
    ma = torch.diag(torch.tensor([3.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    mb = torch.eye(4, dtype=torch.float64)
    mb[0, 3] = 8.3
    a = matrix_grid(ma, (8, 8, 8))  # centres along D: 1.5, 7.5, 13.5, 19.5
    b = matrix_grid(mb, (8, 8, 8))  # centres along D: 8.8 ... 14.8, field of view [7.8, 15.8]
    m = matched_tokens(a, b, 2)
    valid_d = m.valid.view(4, 4, 4)[:, 0, 0].tolist()
    assert valid_d == [False, False, True, False]
    # Token 1 (centre 7.5, A's token spans [4.5, 10.5]) contains B's centre 8.8 but lies
    # outside B's view.
    assert float(m.distance.view(4, 4, 4)[1, 0, 0]) == pytest.approx(1.3, abs=1e-5)


def test_batched_equals_unbatched() -> None:
    compose = SpatialCompose3D([RandomResizedCrop3D(8), RandomAffine3D()])
    volume = coordinate_volume((16, 16, 16))
    grids_a = torch.stack([compose(volume, generator=s).grid for s in range(3)])
    grids_b = torch.stack([compose(volume, generator=s + 10).grid for s in range(3)])
    batched = matched_tokens(grids_a, grids_b, 2)
    assert batched.index_b.shape == (3, 64)
    for i in range(3):
        single = matched_tokens(grids_a[i], grids_b[i], 2)
        assert torch.equal(single.index_b, batched.index_b[i])
        assert torch.equal(single.valid, batched.valid[i])
        assert torch.equal(single.index_a, torch.arange(64))


def test_bad_grids() -> None:
    g = torch.zeros(3, 8, 8, 8)
    with pytest.raises(TransformInputError, match="divisible"):
        matched_tokens(g, g, 3)
    with pytest.raises(TransformInputError, match=r"\(3, d, h, w\)"):
        matched_tokens(torch.zeros(8, 8, 8), g, 2)
    with pytest.raises(TransformInputError, match="both"):
        matched_tokens(g[None], g, 2)
