"""Frozen-feature probes and their features against plain references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightly_topo.eval.features import (
    IntensityEncoder,
    encode,
    fuse,
    sample_voxels,
    voxel_logits,
)
from lightly_topo.eval.metrics import presence_dice
from lightly_topo.eval.probes import ABSENT_LOGIT, fit_dense_probe, fit_subject_probes, predict


def test_sampled_voxels_equal_interpolating_the_whole_grid() -> None:
    grid = torch.randn(2, 3, 4, 4, 4)
    full = F.interpolate(grid.reshape(1, 6, 4, 4, 4), size=(8, 8, 8), mode="trilinear")[0]
    voxels = torch.tensor([[0, 0, 0], [7, 7, 7], [3, 5, 1], [6, 0, 2]])
    sampled = sample_voxels(grid, voxels, (8, 8, 8))
    expected = full[:, voxels[:, 0], voxels[:, 1], voxels[:, 2]].T
    torch.testing.assert_close(sampled, expected)


def test_voxel_logits_equal_a_linear_probe_on_interpolated_features() -> None:
    grid = torch.randn(6, 4, 4, 4)
    weight, bias = torch.randn(3, 6), torch.randn(3)
    full = F.interpolate(grid[None], size=(8, 8, 8), mode="trilinear")[0]
    expected = torch.einsum("kc,cdhw->kdhw", weight, full) + bias.view(-1, 1, 1, 1)
    torch.testing.assert_close(
        voxel_logits(grid, weight, bias, (8, 8, 8)), expected, atol=1e-5, rtol=1e-5
    )


def test_fuse_averages_only_available_modalities() -> None:
    features = torch.stack([torch.ones(2, 3), 3 * torch.ones(2, 3), 100 * torch.ones(2, 3)])
    fused = fuse(features, torch.tensor([True, True, False]))
    torch.testing.assert_close(fused, 2 * torch.ones(2, 3))


def test_intensity_encoder_gives_the_intensities_only() -> None:
    image = torch.rand(1, 2, 8, 8, 8)
    encoded = encode(IntensityEncoder(2), image, torch.tensor([[True, False]]))
    assert encoded.grid.shape[1] == 0
    torch.testing.assert_close(encoded.image[0, 0], image[0, 0])
    assert torch.all(encoded.image[1] == 0)
    assert encoded.pooled.shape == (2 * 10,)
    voxels = torch.tensor([[1, 2, 3], [7, 0, 4]])
    sampled = sample_voxels(encoded.grid, voxels, (8, 8, 8), encoded.image)
    torch.testing.assert_close(sampled[:, 0], image[0, 0, voxels[:, 0], voxels[:, 1], voxels[:, 2]])
    weight, bias = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0.0, 0.5])
    logits = voxel_logits(encoded.grid, weight, bias, (8, 8, 8), encoded.image)
    torch.testing.assert_close(logits[0], 2 * image[0, 0])


def test_hypercolumn_logits_add_the_intensity_term() -> None:
    grid, image = torch.randn(1, 3, 4, 4, 4), torch.randn(1, 1, 8, 8, 8)
    weight, bias = torch.randn(2, 4), torch.randn(2)
    voxels = torch.stack(torch.meshgrid(*[torch.arange(8)] * 3, indexing="ij"), -1).reshape(-1, 3)
    features = sample_voxels(grid, voxels, (8, 8, 8), image)
    expected = (features @ weight.T + bias).T.reshape(2, 8, 8, 8)
    torch.testing.assert_close(
        voxel_logits(grid, weight, bias, (8, 8, 8), image), expected, atol=1e-5, rtol=1e-5
    )


def test_dense_probe_separates_classes_and_never_predicts_absent_ones() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (200, 4)), rng.normal(4, 1, (200, 4))])
    y = np.repeat([0, 2], 200)
    probe = fit_dense_probe(x, y, num_classes=3)
    pred = probe.logits(torch.from_numpy(x)).argmax(1).numpy()
    assert (pred == y).mean() > 0.97
    assert float(probe.bias[1]) == ABSENT_LOGIT and torch.all(probe.weight[1] == 0)


def test_dense_probe_priors_move_the_decision_towards_the_frequent_class() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (100, 1)), rng.normal(1, 1, (100, 1))])
    y = np.repeat([0, 1], 100)
    even = fit_dense_probe(x, y, 2)
    skewed = fit_dense_probe(x, y, 2, class_voxels=np.array([99.0, 1.0]))
    middle = torch.tensor([[0.5]])
    assert int(even.logits(middle).argmax()) in (0, 1)
    assert int(skewed.logits(middle).argmax()) == 0
    with pytest.raises(ValueError, match="only class"):
        fit_dense_probe(x, np.zeros(200, dtype=int), 2)


def test_subject_probes_fit_and_predict_strings() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, (20, 5)), rng.normal(3, 1, (20, 5))])
    y = np.array(["left"] * 20 + ["right"] * 20)
    fitted = fit_subject_probes(x, y)
    for estimator in fitted.values():
        assert (predict(estimator, x) == y).mean() > 0.9


@pytest.mark.parametrize(
    ("pred", "target", "dice", "false_positive"),
    [
        # class present in the target: Dice, never a false-positive volume
        ([1, 1, 0, 0], [1, 0, 0, 0], [0.8, 2 / 3], [None, None]),
        # absent from the target but predicted: false-positive volume, never a Dice of 0
        ([1, 0, 0, 0], [0, 0, 0, 0], [6 / 7, None], [None, 2.0]),
        # absent from both: no Dice (not NaN mixed into a mean), zero false positives
        ([0, 0, 0, 0], [0, 0, 0, 0], [1.0, None], [None, 0.0]),
    ],
)
def test_presence_dice_convention(
    pred: list[int], target: list[int], dice: list[float | None], false_positive: list[float | None]
) -> None:
    got_dice, got_fp = presence_dice(torch.tensor(pred), torch.tensor(target), 2, voxel_ml=2.0)
    for got, want in ((got_dice, dice), (got_fp, false_positive)):
        for value, expected in zip(got.tolist(), want):
            if expected is None:
                assert np.isnan(value)
            else:
                assert value == pytest.approx(expected)
