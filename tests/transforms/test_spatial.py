"""Every spatial transform's grid equals what the output voxels of a coordinate volume say."""

from __future__ import annotations

import pytest
import torch
from transform_volumes import coordinate_volume, index_labels, inside

from lightly_topo.transforms import (
    CenterCrop3D,
    RandomAffine3D,
    RandomCrop3D,
    RandomElastic3D,
    RandomFlip3D,
    RandomResizedCrop3D,
    RandomRotate90_3D,
    SpatialCompose3D,
    TransformInputError,
)
from lightly_topo.transforms.grid import sample

SHAPE = (14, 12, 10)

TRANSFORMS = {
    "crop": lambda: [RandomCrop3D((8, 7, 6))],
    "center_crop": lambda: [CenterCrop3D(6)],
    "resized_crop": lambda: [RandomResizedCrop3D((9, 8, 7), scale=(0.2, 1.0))],
    "flip": lambda: [RandomFlip3D(p=0.5)],
    "rotate90": lambda: [RandomRotate90_3D(p=1.0)],
    "affine": lambda: [RandomAffine3D(degrees=20, scale=0.15, shear=0.1, translate=2.0)],
    "elastic": lambda: [RandomElastic3D(num_control_points=5, max_displacement=1.2)],
    "chain": lambda: [
        RandomResizedCrop3D(8, scale=(0.3, 1.0)),
        RandomFlip3D(p=0.5),
        RandomRotate90_3D(p=0.7),
        RandomAffine3D(degrees=10, scale=0.1, shear=0.05, translate=1.0),
        RandomElastic3D(num_control_points=4, max_displacement=0.8),
        RandomCrop3D(6),
    ],
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grid_equals_output_coordinates(name: str, seed: int) -> None:
    compose = SpatialCompose3D(TRANSFORMS[name]())
    volume = coordinate_volume(SHAPE)
    out = compose(volume, label_map=index_labels(SHAPE), generator=seed)
    assert out.grid.dtype == torch.float32 and out.grid.shape[0] == 3
    assert out.image.shape[1:] == out.grid.shape[1:]
    keep = inside(out.grid, SHAPE)
    assert keep.float().mean() > 0.3
    torch.testing.assert_close(out.image[:, keep], out.grid[:, keep], atol=2e-3, rtol=0)
    # Label map: nearest neighbour at the same grid (flat index of the rounded coordinates).
    r = out.grid.round().long()
    flat = (r[0] * SHAPE[1] + r[1]) * SHAPE[2] + r[2]
    frac = (out.grid - out.grid.round()).abs().amax(0)
    sure = keep & (frac < 0.49)
    assert out.label_map is not None and out.label_map.dtype == torch.int64
    assert torch.equal(out.label_map[0][sure], flat[sure])


def test_single_transform_call_returns_grid() -> None:
    out = RandomCrop3D(4)(coordinate_volume(SHAPE), generator=3)
    torch.testing.assert_close(out.image, out.grid)


def test_rotate90_matches_torch_rot90() -> None:
    volume = torch.randn(2, 5, 6, 7)
    for plane in [(0, 1), (0, 2), (1, 2)]:
        for k in (1, 2, 3):
            rot = RandomRotate90_3D(p=1.0, planes=[plane], max_k=k)
            gen = torch.Generator().manual_seed(0)
            while True:  # draw until k quarter turns come up
                state = gen.get_state()
                step = rot.sample_step((5, 6, 7), gen)
                if _quarter_turns(step.matrix, plane) == k:
                    break
            gen.set_state(state)
            out = rot(volume, generator=gen)
            assert torch.equal(out.image, torch.rot90(volume, k, dims=(plane[0] + 1, plane[1] + 1)))


def _quarter_turns(matrix: torch.Tensor, plane: tuple[int, int]) -> int:
    a, b = plane
    block = matrix[[a, b]][:, [a, b]].round().long().tolist()
    return {((0, 1), (-1, 0)): 1, ((-1, 0), (0, -1)): 2, ((0, -1), (1, 0)): 3}[
        tuple(map(tuple, block))
    ]


def test_exact_ops_are_exact_and_match_grid_sample() -> None:
    volume = torch.randn(3, *SHAPE)
    compose = SpatialCompose3D([RandomCrop3D(8), RandomFlip3D(p=0.5), RandomRotate90_3D(p=1.0)])
    for seed in range(4):
        out = compose(volume, generator=seed)
        # Every output voxel is an input voxel: exact copies, no interpolation.
        r = out.grid.round().long()
        assert torch.equal(out.grid, r.float())
        assert torch.equal(out.image, volume[:, r[0], r[1], r[2]])
        via_grid_sample = sample(volume[None], out.grid[None])[0]
        torch.testing.assert_close(out.image, via_grid_sample, atol=1e-4, rtol=1e-4)


def test_shared_draw_across_modalities() -> None:
    volume = coordinate_volume(SHAPE)
    stacked = torch.cat([volume, volume * 2 + 5])  # two "modalities" of one subject
    compose = SpatialCompose3D([RandomResizedCrop3D(7), RandomAffine3D(), RandomElastic3D(4, 1.0)])
    out = compose(stacked, generator=11)
    keep = inside(out.grid, SHAPE)
    torch.testing.assert_close(out.image[3:, keep], out.image[:3, keep] * 2 + 5, atol=1e-3, rtol=0)


def test_crop_larger_than_volume_pads_with_zeros() -> None:
    volume = coordinate_volume((6, 6, 6)) + 1.0
    out = RandomCrop3D((10, 6, 4))(
        volume, label_map=torch.ones(1, 6, 6, 6, dtype=torch.int64), generator=0
    )
    assert out.image.shape == (3, 10, 6, 4)
    keep = inside(out.grid, (6, 6, 6))
    assert int(keep.sum()) == 6 * 6 * 4  # the whole D extent is kept
    assert torch.equal(out.image[:, ~keep], torch.zeros_like(out.image[:, ~keep]))
    assert out.label_map is not None and int(out.label_map.sum()) == 6 * 6 * 4
    torch.testing.assert_close(out.image[:, keep], out.grid[:, keep] + 1.0)


def test_resized_crop_scale_changes_spacing() -> None:
    out = RandomResizedCrop3D(6, scale=(1.0, 1.0), ratio=(1.0, 1.0))(
        coordinate_volume((12, 12, 12)), generator=0
    )
    steps = torch.diff(out.grid[0], dim=0)
    torch.testing.assert_close(steps, torch.full_like(steps, 2.0))
    assert float(out.grid[0, 0, 0, 0]) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(4, 4, 4), r"\(C, D, H, W\)"),
        (torch.zeros(1, 4, 4, 4, dtype=torch.int64), "floating-point"),
        (torch.zeros(1, 1, 4, 4), "at least 2 voxels"),
    ],
)
def test_bad_volume_names_expected_shape(bad: torch.Tensor, message: str) -> None:
    with pytest.raises(TransformInputError, match=message):
        RandomCrop3D(2)(bad)


def test_bad_label_map() -> None:
    with pytest.raises(TransformInputError, match=r"\(1, D, H, W\)"):
        RandomCrop3D(2)(torch.zeros(1, 4, 4, 4), label_map=torch.zeros(4, 4, 4, dtype=torch.int64))
    with pytest.raises(TransformInputError, match="int64"):
        RandomCrop3D(2)(torch.zeros(1, 4, 4, 4), label_map=torch.zeros(1, 4, 4, 4))


def test_seeded_calls_reproduce_and_global_rng_untouched() -> None:
    volume = torch.randn(1, 8, 8, 8)
    state = torch.get_rng_state()
    compose = SpatialCompose3D([RandomResizedCrop3D(5), RandomAffine3D(), RandomElastic3D(4, 1.0)])
    a = compose(volume, generator=5)
    b = compose(volume, generator=5)
    c = compose(volume, generator=6)
    assert torch.equal(a.image, b.image) and not torch.equal(a.grid, c.grid)
    unseeded = SpatialCompose3D([RandomCrop3D(4)], seed=1)
    unseeded(volume)
    assert torch.equal(torch.get_rng_state(), state)
