from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, compute_hausdorff_distance
from monai.networks.utils import one_hot
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from lightly_topo.eval.metrics import (
    accuracy,
    auroc,
    balanced_accuracy,
    dice_per_class,
    hd95,
    mean_dice,
)


def test_dice_hand_computed() -> None:
    pred = torch.tensor([[[0, 1, 1], [2, 2, 0]]])
    target = torch.tensor([[[0, 1, 0], [2, 1, 0]]])
    # class 1: |P|=2, |T|=2, overlap 1 -> 0.5; class 2: |P|=2, |T|=1, overlap 1 -> 2/3;
    # class 3 absent from both -> NaN; background: |P|=2, |T|=3, overlap 2 -> 0.8.
    d = dice_per_class(pred, target, num_classes=4)
    assert d.shape == (3,)
    assert d[0].item() == pytest.approx(0.5)
    assert d[1].item() == pytest.approx(2 / 3)
    assert math.isnan(d[2].item())
    full = dice_per_class(pred, target, num_classes=4, ignore_background=False)
    assert full[0].item() == pytest.approx(0.8)
    assert mean_dice(pred, target, 4) == pytest.approx((0.5 + 2 / 3) / 2)


def test_dice_one_side_empty_is_zero_and_shapes() -> None:
    target = torch.zeros(1, 1, 2, 2, 2, dtype=torch.long)
    pred = target.clone()
    pred[0, 0, 0, 0, 0] = 1
    d = dice_per_class(pred, target, 2)
    assert d.shape == (1, 1) and d.item() == 0.0
    assert math.isnan(mean_dice(target, target, 2))


def test_dice_batch_matches_monai() -> None:
    g = torch.Generator().manual_seed(0)
    num_classes = 4
    target = torch.randint(0, num_classes, (3, 1, 9, 8, 7), generator=g)
    pred = torch.where(
        torch.rand(target.shape, generator=g) < 0.7,
        target,
        torch.randint(0, num_classes, target.shape, generator=g),
    )
    ours = dice_per_class(pred, target, num_classes)
    metric = DiceMetric(include_background=False, reduction="none")
    theirs = metric(one_hot(pred, num_classes), one_hot(target, num_classes))
    torch.testing.assert_close(ours, theirs.double(), rtol=1e-6, atol=1e-6)
    # Same inputs as (B, D, H, W) and numpy.
    torch.testing.assert_close(dice_per_class(pred[:, 0].numpy(), target[:, 0], num_classes), ours)
    mean_metric = DiceMetric(include_background=False, reduction="mean")
    mean_metric(one_hot(pred, num_classes), one_hot(target, num_classes))
    assert mean_dice(pred, target, num_classes) == pytest.approx(
        mean_metric.aggregate().item(), abs=1e-6
    )


def test_dice_errors() -> None:
    x = torch.zeros(2, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="same shape"):
        dice_per_class(x, x[0], 2)
    with pytest.raises(ValueError, match="outside"):
        dice_per_class(x + 2, x, 2)
    with pytest.raises(ValueError, match="num_classes"):
        dice_per_class(x, x, 1)
    with pytest.raises(ValueError, match="integer"):
        dice_per_class(x + 0.5, x, 2)
    with pytest.raises(ValueError, match=r"\(B, 1, D, H, W\)"):
        dice_per_class(torch.zeros(1, 2, 2, 2, 2), torch.zeros(1, 2, 2, 2, 2), 2)


def _cube(shape: tuple[int, int, int], lo: tuple[int, ...], hi: tuple[int, ...]) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return m


def test_hd95_hand_computed() -> None:
    a = _cube((10, 10, 10), (2, 2, 2), (5, 5, 5))
    b = np.roll(a, 3, axis=0)
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(a, b, spacing=(2.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert hd95(a, a) == 0.0
    assert hd95(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(3.0)


def test_hd95_empty_conventions() -> None:
    empty = np.zeros((4, 4, 4), dtype=bool)
    full = _cube((4, 4, 4), (1, 1, 1), (3, 3, 3))
    assert math.isnan(hd95(empty, empty))
    assert hd95(empty, full) == math.inf
    assert hd95(full, empty) == math.inf


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy")
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.5, 0.8, 2.0)])
def test_hd95_matches_monai(spacing: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(1)
    for _ in range(3):
        shape = (16, 14, 12)
        grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
        c1 = rng.uniform(4, 10, 3)[:, None, None, None]
        c2 = c1 + rng.uniform(-2, 2, (3, 1, 1, 1))
        a = ((grid - c1) ** 2).sum(0) < rng.uniform(9, 20)
        b = (((grid - c2) / [[[[1.2]]], [[[1.0]]], [[[0.8]]]]) ** 2).sum(0) < rng.uniform(9, 20)
        b[rng.random(shape) < 0.01] = True
        ours = hd95(a, b, spacing)
        theirs = compute_hausdorff_distance(
            torch.from_numpy(a)[None, None].float(),
            torch.from_numpy(b)[None, None].float(),
            include_background=True,
            percentile=95,
            spacing=list(spacing),
        )
        assert 0.0 < ours < math.inf
        assert ours == pytest.approx(theirs.item(), rel=1e-5)


def test_hd95_errors() -> None:
    a = np.zeros((3, 3, 3), dtype=bool)
    with pytest.raises(ValueError, match="3D masks"):
        hd95(a, a[0])
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="binary"):
        hd95(a + 2, a)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_accuracy_and_balanced_accuracy() -> None:
    pred = [0, 0, 1, 1, 2, 2, 2]
    target = [0, 0, 0, 1, 1, 2, 2]
    assert accuracy(pred, target) == pytest.approx(5 / 7)
    assert balanced_accuracy(pred, target) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        t = rng.integers(0, 4, 50)
        p = np.where(rng.random(50) < 0.6, t, rng.integers(0, 5, 50))
        assert balanced_accuracy(torch.from_numpy(p), t) == pytest.approx(
            balanced_accuracy_score(t, p)
        )
    with pytest.raises(ValueError, match="same length"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        balanced_accuracy([], [])


def test_auroc_hand_computed_with_ties() -> None:
    # Positive/negative pairs: (0.5 vs 0.1) win, (0.5 vs 0.5) tie, (0.9 vs both) wins -> 3.5/4.
    assert auroc([0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.875)
    assert auroc([0.9, 0.8, 0.1], [0, 0, 1]) == 0.0


def test_auroc_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    s = np.round(y * 0.3 + rng.random(80), 1)  # rounding creates ties
    assert auroc(torch.from_numpy(s), y) == pytest.approx(roc_auc_score(y, s))
    y3 = np.arange(90) % 3
    logits = rng.normal(size=(90, 3)) + np.eye(3)[y3]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = roc_auc_score(y3, probs, multi_class="ovr", average="macro")
    assert auroc(probs, y3) == pytest.approx(expected)


def test_auroc_errors() -> None:
    with pytest.raises(ValueError, match="positive and negative"):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="class 2"):
        auroc(np.full((4, 3), 1 / 3), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="same length"):
        auroc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        auroc([0.1, 0.2, 0.3], [0, 1, 2])
