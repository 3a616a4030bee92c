"""Two-way bootstrap scores against plain references."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from lightly_topo.eval.bootstrap import (
    BalancedAccuracyScore,
    Draws,
    MeanScore,
    interval,
    paired_interval,
)


def test_mean_score_ignores_nan_and_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    values = rng.random((4, 9))
    values[1, 3] = np.nan
    score = MeanScore(values)
    assert score.point() == pytest.approx(np.nanmean(values))
    draws = Draws.make(4, 9, draws=20, seed=1)
    resampled = score.resampled(draws)
    for b in range(20):
        picked = values[np.ix_(draws.seeds[b], draws.subjects[b])]
        assert resampled[b] == pytest.approx(np.nanmean(picked))


def test_balanced_accuracy_score_matches_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    targets = rng.integers(0, 3, size=(1, 30))
    predictions = rng.integers(0, 3, size=(1, 2, 30))
    score = BalancedAccuracyScore(predictions, targets)
    pooled_truth = np.concatenate([targets[0], targets[0]])
    pooled_pred = predictions[0].reshape(-1)
    assert score.point() == pytest.approx(balanced_accuracy_score(pooled_truth, pooled_pred))


def test_unlabelled_subjects_do_not_count() -> None:
    targets = np.array([[0, 1, -1]])
    predictions = np.array([[[0, 1, 0]]])
    assert BalancedAccuracyScore(predictions, targets).point() == 1.0


def test_paired_interval_of_a_method_with_itself_is_zero_and_draws_are_seeded() -> None:
    values = np.random.default_rng(3).random((5, 40))
    draws = Draws.make(5, 40, draws=300, seed=0)
    assert paired_interval(MeanScore(values), MeanScore(values), draws) == (0.0, 0.0, 0.0)
    again = Draws.make(5, 40, draws=300, seed=0)
    assert interval(MeanScore(values), draws) == interval(MeanScore(values), again)
    point, low, high = interval(MeanScore(values), draws)
    assert low < point < high


def test_interval_widens_with_the_spread_of_seeds() -> None:
    rng = np.random.default_rng(4)
    subjects = rng.normal(0.5, 0.05, size=(1, 50))
    calm = np.repeat(subjects, 5, axis=0)
    shaky = calm + rng.normal(0, 0.1, size=(5, 1))
    draws = Draws.make(5, 50, draws=500, seed=0)
    _, low_c, high_c = interval(MeanScore(calm), draws)
    _, low_s, high_s = interval(MeanScore(shaky), draws)
    assert high_s - low_s > 2 * (high_c - low_c)
