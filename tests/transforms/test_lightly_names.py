"""Lightly's argument names on the 3D transforms, the older names as aliases, and the
error for a raw tensor."""

from __future__ import annotations

import pytest
import torch

from lightly_topo.data import volume_item
from lightly_topo.transforms import (
    BYOLTransform3D,
    MAETransform3D,
    SimCLRTransform3D,
    TopoTransform3D,
)
from lightly_topo.transforms.byol_transform import BYOLView1Transform3D, BYOLView2Transform3D
from lightly_topo.transforms.errors import TransformInputError
from lightly_topo.transforms.simclr_transform import SimCLRViewTransform3D

ITEM = volume_item(torch.randn(2, 12, 12, 12), ("t1", "flair"), subject_id="s1")


def _views(transform: object) -> list[dict]:
    return transform(ITEM, generator=3)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("cls", "lightly", "older"),
    [
        (SimCLRTransform3D, {"input_size": 8}, {"size": 8}),
        (
            SimCLRTransform3D,
            {"gaussian_blur": 1.0, "sigmas": (1.0, 2.0)},
            {"blur_prob": 1.0, "blur_sigma": (1.0, 2.0)},
        ),
        (SimCLRTransform3D, {"input_size": 8, "rr_prob": 1.0}, {"size": 8, "rotate90_prob": 1.0}),
        (
            SimCLRViewTransform3D,
            {"input_size": 8, "gaussian_blur": 0.0},
            {"size": 8, "blur_prob": 0.0},
        ),
        (BYOLTransform3D, {"input_size": 8}, {"size": 8}),
        (
            BYOLView1Transform3D,
            {"input_size": 8, "gaussian_blur": 0.0},
            {"size": 8, "blur_prob": 0.0},
        ),
        (
            BYOLView2Transform3D,
            {"input_size": 8, "rr_prob": 1.0},
            {"size": 8, "rotate90_prob": 1.0},
        ),
        (MAETransform3D, {"input_size": 8}, {"size": 8}),
        (TopoTransform3D, {"input_size": 8, "rr_prob": 0.0}, {"size": 8, "rotate90_prob": 0.0}),
    ],
)
def test_lightly_names_and_older_aliases_give_the_same_views(cls, lightly, older) -> None:  # type: ignore[no-untyped-def]
    views = _views(cls(**lightly, seed=1))
    same = _views(cls(**older, seed=1))
    views = views if isinstance(views, list) else [views]
    same = same if isinstance(same, list) else [same]
    for a, b in zip(views, same):
        assert torch.equal(a["image"], b["image"])
    if "input_size" in lightly:
        assert tuple(views[0]["image"].shape[1:]) == (8, 8, 8)


def test_a_name_and_its_alias_that_disagree_are_refused() -> None:
    with pytest.raises(TypeError, match="input_size=8 and its older alias size=12 disagree"):
        SimCLRTransform3D(input_size=8, size=12)
    SimCLRTransform3D(input_size=8, size=8)  # the same value twice is fine


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (torch.zeros(2, 12, 12, 12), r"got a Tensor of shape \(2, 12, 12, 12\); wrap a tensor"),
        ([torch.zeros(1, 12, 12, 12)], "got a list"),
        ({"image": torch.zeros(1, 12, 12, 12)}, "item has no 'images'"),
    ],
)
def test_what_is_not_a_volume_item_gets_an_error_naming_what_was_expected(item, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TransformInputError, match=message):
        SimCLRTransform3D(input_size=8)(item)


def test_volume_item_wraps_a_tensor_with_its_availability() -> None:
    image = torch.randn(3, 8, 8, 8)
    item = volume_item(image, ("t1", "t2", "flair"), mask=torch.tensor([True, False, True]))
    assert sorted(item["images"]) == ["flair", "t1"]
    assert torch.equal(item["images"]["flair"][0], image[2])
    views = SimCLRTransform3D(input_size=8)(item, generator=0)
    assert views[0]["mask"].tolist() == [True, False, True]
    with pytest.raises(ValueError, match=r"M = 2 modalities"):
        volume_item(image, ("t1", "t2"))


def test_the_views_work_inside_lightlys_multi_view_transform() -> None:
    multi_view = pytest.importorskip("lightly.transforms.multi_view_transform")
    view = SimCLRViewTransform3D(input_size=8, seed=0)
    views = multi_view.MultiViewTransform(transforms=[view, view])(ITEM)
    assert len(views) == 2 and tuple(views[0]["image"].shape) == (2, 8, 8, 8)
