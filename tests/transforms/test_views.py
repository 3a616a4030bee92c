"""View transforms: the view format, shared spatial draws, mask invariants, collation."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from transform_volumes import make_item

from lightly_topo.transforms import (
    BYOLTransform3D,
    MAETransform3D,
    NotEnoughModalitiesError,
    RandomGaussianBlur3D,
    SimCLRTransform3D,
    TopoTransform3D,
    TransformInputError,
    collate_views,
    matched_tokens,
)

SHAPE = (20, 18, 16)


def _encoded(grid: torch.Tensor, modality: int) -> torch.Tensor:
    return grid[0] + 100 * grid[1] + 10000 * grid[2] + 1e6 * modality


def _inside(grid: torch.Tensor) -> torch.Tensor:
    upper = torch.tensor(SHAPE, dtype=grid.dtype).view(3, 1, 1, 1)
    return ((grid >= 0) & (grid <= upper - 1)).all(0)


def _check_view(view: dict, item: dict, size: int) -> None:
    m = len(item["modality_names"])
    assert view["image"].shape == (m, size, size, size) and view["image"].dtype == torch.float32
    assert (
        view["mask"].shape == (m,) and view["mask"].dtype == torch.bool and bool(view["mask"].any())
    )
    assert view["grid"].shape == (3, size, size, size) and view["grid"].dtype == torch.float32
    assert view["subject_id"] == item["subject_id"]
    assert view["modality_names"] == tuple(item["modality_names"])
    assert bool((view["mask"] <= item["mask"]).all())
    assert float(view["image"][~view["mask"]].abs().sum()) == 0.0
    labels = view["label_map"]
    assert (
        labels is not None and labels.shape == (1, size, size, size) and labels.dtype == torch.int64
    )
    r = view["grid"].round().long()
    sure = _inside(view["grid"]) & ((view["grid"] - r).abs().amax(0) < 0.49)
    flat = (r[0] * SHAPE[1] + r[1]) * SHAPE[2] + r[2]
    assert torch.equal(labels[0][sure], flat[sure])


@pytest.mark.parametrize("name", ["simclr", "byol", "mae"])
def test_instance_views(name: str) -> None:
    transform = {
        "simclr": lambda: SimCLRTransform3D(size=8, modality_dropout=0.5),
        "byol": lambda: BYOLTransform3D(size=8),
        "mae": lambda: MAETransform3D(size=8),
    }[name]()
    item = make_item(SHAPE, present=("t1", "t2", "flair"))
    views = transform(item, generator=0)
    assert len(views) == (1 if name == "mae" else 2)
    for view in views:
        _check_view(view, item, 8)
    if name != "mae":
        assert not torch.equal(views[0]["grid"], views[1]["grid"])
    else:  # no intensity change: every modality reads its encoded coordinates
        view = views[0]
        keep = _inside(view["grid"])
        for m in torch.nonzero(view["mask"]).flatten().tolist():
            torch.testing.assert_close(
                view["image"][m][keep], _encoded(view["grid"], m)[keep], rtol=1e-6, atol=0.5
            )


def test_byol_views_are_asymmetric() -> None:
    t = BYOLTransform3D(size=8)
    blur = [
        next(i for i in view.pipeline.intensity if isinstance(i, RandomGaussianBlur3D)).p
        for view in t.transforms
    ]
    assert blur == [1.0, 0.1]


def test_topo_views_share_one_spatial_draw() -> None:
    item = make_item(SHAPE, present=("t1", "t1ce", "flair"))
    views = TopoTransform3D(size=8, num_modalities=3, scale_shift_prob=0.0)(item, generator=1)
    assert len(views) == 3
    chosen = []
    for view in views:
        _check_view(view, item, 8)
        assert int(view["mask"].sum()) == 1
        m = int(view["mask"].nonzero())
        chosen.append(m)
        assert torch.equal(view["grid"], views[0]["grid"])
        keep = _inside(view["grid"])
        torch.testing.assert_close(
            view["image"][m][keep], _encoded(view["grid"], m)[keep], rtol=1e-6, atol=0.5
        )
    assert sorted(chosen) == [0, 1, 3]


def test_topo_intensity_draws_are_independent() -> None:
    item = make_item(SHAPE)
    item["images"] = {n: item["images"]["t1"].clone() for n in item["modality_names"]}
    views = TopoTransform3D(size=8, num_modalities=4, scale_shift_prob=1.0)(item, generator=0)
    channels = [v["image"][int(v["mask"].nonzero())] for v in views]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.allclose(channels[a], channels[b])


def test_topo_second_spatial_view_and_matching() -> None:
    item = make_item((24, 24, 24), labels=False)
    views = TopoTransform3D(size=16, num_spatial_views=2, rotate90_prob=0.0, flip_prob=0.0)(
        item, generator=0
    )
    assert len(views) == 4
    assert torch.equal(views[0]["grid"], views[1]["grid"]) and torch.equal(
        views[2]["grid"], views[3]["grid"]
    )
    assert not torch.equal(views[0]["grid"], views[2]["grid"])
    assert views[0]["label_map"] is None
    m = matched_tokens(views[0]["grid"], views[2]["grid"], 2)
    assert m.valid.shape == (512,)


def test_topo_with_one_modality() -> None:
    item = make_item(SHAPE, present=("t2",))
    with pytest.raises(NotEnoughModalitiesError, match="sub-0"):
        TopoTransform3D(size=8, on_too_few="error")(item, generator=0)
    views = TopoTransform3D(size=8, scale_shift_prob=1.0)(item, generator=0)
    assert [int(v["mask"].nonzero()) for v in views] == [2, 2]
    assert not torch.equal(views[0]["image"], views[1]["image"])


def test_crop_larger_than_volume_pads() -> None:
    item = make_item((6, 6, 6))
    views = TopoTransform3D(size=8, scale_shift_prob=0.0)(item, generator=0)
    assert views[0]["image"].shape[1:] == (8, 8, 8)
    outside = ~_inside(views[0]["grid"]) | (views[0]["grid"] > 5).any(0)
    m = int(views[0]["mask"].nonzero())
    assert float(views[0]["image"][m][outside].abs().sum()) == 0.0


def test_collate_views() -> None:
    transform = SimCLRTransform3D(size=8)
    items = [make_item(SHAPE, seed=s) for s in range(3)]
    items[1]["label_map"] = None
    batches = collate_views([transform(it, generator=i) for i, it in enumerate(items)])
    assert len(batches) == 2
    assert batches[0]["image"].shape == (3, 4, 8, 8, 8) and batches[0]["mask"].shape == (3, 4)
    assert batches[0]["grid"].shape == (3, 3, 8, 8, 8) and batches[0]["label_map"] is None
    assert batches[0]["subject_id"] == ["sub-0", "sub-1", "sub-2"]
    with pytest.raises(TransformInputError, match="same number of views"):
        collate_views([transform(items[0]), MAETransform3D(size=8)(items[0])])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda it: it.pop("mask"), "no 'mask'"),
        (lambda it: it["images"].pop("t2"), "absent in images but True"),
        (lambda it: it["images"].update(t1=torch.zeros(20, 18, 16)), r"\(1, D, H, W\)"),
        (
            lambda it: it["images"].update(t1=torch.zeros(1, 20, 18, 16, dtype=torch.int32)),
            "float32",
        ),
        (lambda it: it["images"].update(t1=torch.zeros(1, 20, 18, 15)), "other modalities"),
        (lambda it: it.update(label_map=torch.zeros(1, 20, 18, 16)), "int64"),
        (lambda it: it.update(mask=torch.ones(3, dtype=torch.bool)), r"shape \(M,\)"),
    ],
)
def test_bad_items(change, message: str) -> None:
    item = make_item(SHAPE)
    change(item)
    with pytest.raises(TransformInputError, match=message):
        SimCLRTransform3D(size=8)(item, generator=0)


def test_reproducible_without_global_rng() -> None:
    item = make_item(SHAPE)
    state = torch.get_rng_state()
    a = SimCLRTransform3D(size=8)(item, generator=7)
    b = SimCLRTransform3D(size=8)(item, generator=7)
    c = SimCLRTransform3D(size=8, seed=3)(item)
    assert torch.equal(a[0]["image"], b[0]["image"]) and torch.equal(a[1]["grid"], b[1]["grid"])
    assert c[0]["image"].shape == a[0]["image"].shape
    assert torch.equal(torch.get_rng_state(), state)


class _Items(Dataset):
    def __init__(self, transform) -> None:
        self.transform = transform

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        return self.transform(make_item((10, 10, 10), seed=0))


def test_dataloader_workers_draw_differently() -> None:
    loader = DataLoader(
        _Items(MAETransform3D(size=4, seed=0)),
        batch_size=1,
        num_workers=2,
        collate_fn=collate_views,
    )
    grids = [batch[0]["grid"] for batch in loader]
    assert len(grids) == 4
    firsts = [grids[0], grids[1]]  # first item of worker 0 and of worker 1
    assert not torch.equal(firsts[0], firsts[1])
