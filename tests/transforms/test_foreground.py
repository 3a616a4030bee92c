"""The views' brain foreground and its token mask, against plain references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transform_volumes import make_item

from lightly_topo.data.preprocess import zscore_foreground
from lightly_topo.transforms import (
    Augment3D,
    BYOLTransform3D,
    MAETransform3D,
    RandomCrop3D,
    RandomFlip3D,
    RandomRotate90_3D,
    RandomScaleShift3D,
    SimCLRTransform3D,
    TopoTransform3D,
    ViewTransform3D,
    collate_views,
    foreground_tokens,
)

SHAPE = (20, 18, 16)


def _brain_item() -> dict:
    """An item whose modalities are non-zero inside a box only, z-scored as the datasets do."""
    item = make_item(SHAPE, present=("t1", "t2", "flair"))
    box = torch.zeros(1, *SHAPE, dtype=torch.bool)
    box[:, 4:15, 3:12, 5:13] = True
    for name, image in item["images"].items():
        z = zscore_foreground(image.numpy(), box.numpy())
        item["images"][name] = torch.from_numpy(z)
    item["box"] = box
    return item


def _expected(view: dict, box: torch.Tensor) -> torch.Tensor:
    """Nearest voxel of the view's grid inside the box (outside the volume: background)."""
    r = view["grid"].round().long()
    upper = torch.tensor(SHAPE).view(3, 1, 1, 1)
    inside = ((r >= 0) & (r <= upper - 1)).all(0)
    r = torch.minimum(r.clamp(min=0), upper - 1)
    return (box[0][r[0], r[1], r[2]] & inside)[None]


TRANSFORMS = [
    ("simclr", lambda: SimCLRTransform3D(size=8)),
    ("byol", lambda: BYOLTransform3D(size=8)),
    ("mae", lambda: MAETransform3D(size=8)),
    ("topo", lambda: TopoTransform3D(size=8)),
]


@pytest.mark.parametrize(("name", "make"), TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
def test_views_carry_the_item_foreground_at_their_grid(name: str, make) -> None:
    item = _brain_item()
    for seed in range(4):
        for view in make()(item, generator=seed):
            fg = view["foreground"]
            assert fg.dtype == torch.bool and fg.shape == (1, 8, 8, 8)
            sure = (view["grid"] - view["grid"].round()).abs().amax(0) < 0.49
            assert torch.equal(fg[0][sure], _expected(view, item["box"])[0][sure])


def test_foreground_ignores_intensity_augmentation() -> None:
    """Brightness shifts and noise make the background non-zero; the foreground is unmoved."""
    item = _brain_item()
    view = SimCLRTransform3D(size=8, gaussian_blur=0.0)(item, generator=3)[0]
    outside = ~view["foreground"][0]
    assert bool(outside.any())
    shifted = view["image"][view["mask"]][:, outside]
    assert float(shifted.abs().max()) > 0  # the augmentation moved the background
    assert torch.equal(view["foreground"], _expected(view, item["box"]))


def test_collate_stacks_foreground() -> None:
    item = _brain_item()
    views = [SimCLRTransform3D(size=8)(item, generator=s) for s in range(3)]
    batch = collate_views(views)
    assert batch[0]["foreground"].shape == (3, 1, 8, 8, 8)
    assert torch.equal(batch[1]["foreground"][2], views[2][1]["foreground"])


def _tokens_reference(fg: np.ndarray, stride: int, min_fraction: float) -> np.ndarray:
    b, _, d, h, w = fg.shape
    out = np.zeros((b, (d // stride) * (h // stride) * (w // stride)), dtype=bool)
    for i in range(b):
        n = 0
        for z in range(d // stride):
            for y in range(h // stride):
                for x in range(w // stride):
                    cell = fg[
                        i,
                        0,
                        z * stride : (z + 1) * stride,
                        y * stride : (y + 1) * stride,
                        x * stride : (x + 1) * stride,
                    ]
                    out[i, n] = cell.mean() >= min_fraction
                    n += 1
    return out


@pytest.mark.parametrize(
    ("shape", "stride", "min_fraction"),
    [((2, 1, 8, 8, 8), 1, 0.5), ((2, 1, 8, 8, 8), 2, 0.5), ((1, 1, 12, 8, 4), 4, 0.25)],
)
def test_foreground_tokens_matches_a_loop(shape, stride: int, min_fraction: float) -> None:
    fg = torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.4
    got = foreground_tokens(fg, stride, min_fraction)
    np.testing.assert_array_equal(got.numpy(), _tokens_reference(fg.numpy(), stride, min_fraction))


def test_foreground_tokens_order_is_the_losses_token_order() -> None:
    fg = torch.zeros(1, 1, 4, 4, 4, dtype=torch.bool)
    fg[0, 0, 2:4, 0:2, 2:4] = True
    features = torch.zeros(1, 1, 2, 2, 2)
    features[0, 0, 1, 0, 1] = 1.0
    tokens = features.flatten(2).transpose(1, 2)[0, :, 0] > 0
    assert torch.equal(foreground_tokens(fg, 2)[0], tokens)


def test_foreground_tokens_refuses_a_view_without_batch_axis() -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, D, H, W\)"):
        foreground_tokens(torch.ones(1, 8, 8, 8, dtype=torch.bool), 2)


def test_zscore_matches_monai_nonzero_normalisation() -> None:
    from monai.transforms import NormalizeIntensity

    rng = np.random.default_rng(0)
    vol = np.zeros((10, 10, 10), np.float32)
    vol[2:8, 3:9, 1:7] = rng.normal(80, 9, (6, 6, 6))
    ref = NormalizeIntensity(nonzero=True)(torch.from_numpy(vol)).numpy()
    np.testing.assert_allclose(zscore_foreground(vol), ref, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SimCLRTransform3D(size=8),  # resized crops: interpolating grids
        lambda: MAETransform3D(size=8),
        lambda: ViewTransform3D(  # crops, flips, rotations: exact indexing
            Augment3D(
                [RandomCrop3D(8), RandomFlip3D(p=0.5), RandomRotate90_3D(p=0.5)],
                [RandomScaleShift3D(p=1.0)],
            )
        ),
        lambda: TopoTransform3D(size=8),
        lambda: BYOLTransform3D(size=8),
    ],
)
def test_view_foreground_equals_the_resampled_item_foreground(make) -> None:
    from lightly_topo.transforms.foreground import channels_foreground, resample_foreground

    item = make_item(SHAPE, present=("t1", "t2", "flair"))
    g = torch.Generator().manual_seed(5)
    holes = torch.rand((1, *SHAPE), generator=g) > 0.6
    for name in item["images"]:
        item["images"][name] = item["images"][name].masked_fill(holes, 0.0)
    brain = channels_foreground([item["images"].get(n) for n in item["modality_names"]])
    for seed in range(6):
        views = make()(item, generator=seed)
        for view in views if isinstance(views, list) else [views]:
            assert torch.equal(view["foreground"], resample_foreground(brain, view["grid"]))
