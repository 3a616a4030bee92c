"""Two-way (seed x subject) bootstrap intervals for scores measured on seeds and subjects.

A benchmark score is a mean over pretraining seeds *and* test subjects, and both are
samples: another seed gives another encoder, other subjects another test set. The interval
of :func:`interval` resamples both, independently and with replacement (the seeds, and the
test subjects, each drawn anew per bootstrap draw; the "pigeonhole" bootstrap of crossed
designs, Owen 2007, "The pigeonhole bootstrap", Annals of Applied Statistics 1(2)), and
reports the percentile interval. A paired difference (:func:`paired_interval`) evaluates
both methods on the *same* draws, so what they share (a seed's initialisation, a hard
subject) cancels. With few seeds the interval is somewhat narrow (the bootstrap variance
of a mean of ``S`` values is ``(S - 1) / S`` of the usual estimate); five seeds or more are
asked for.

Scores are statistics of a ``(seeds, subjects)`` layout: :class:`MeanScore` (a mean of
per-subject values, NaN where a subject does not count, e.g. lesion Dice on a subject
without lesion) and :class:`BalancedAccuracyScore` (balanced accuracy of predictions,
averaged over one or more labels).

>>> import numpy as np
>>> values = np.array([[0.5, 0.7, 0.6], [0.6, 0.8, 0.7]])
>>> d = Draws.make(2, 3, draws=200, seed=0)
>>> point, low, high = interval(MeanScore(values), d)
>>> round(point, 3), bool(low <= point <= high)
(0.65, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Draws:
    """Resampled seed and subject indices of every bootstrap draw.

    Attributes:
        seeds: int ``(B, S)``.
        subjects: int ``(B, J)``.
    """

    seeds: np.ndarray
    subjects: np.ndarray

    @classmethod
    def make(cls, n_seeds: int, n_subjects: int, draws: int = 2000, seed: int = 0) -> Draws:
        """``draws`` independent resamples of ``n_seeds`` seeds and ``n_subjects`` subjects."""
        if n_seeds < 1 or n_subjects < 1:
            raise ValueError(f"bootstrap needs seeds and subjects, got {n_seeds} and {n_subjects}")
        rng = np.random.default_rng(seed)
        return cls(
            seeds=rng.integers(0, n_seeds, size=(draws, n_seeds)),
            subjects=rng.integers(0, n_subjects, size=(draws, n_subjects)),
        )


class Score(Protocol):
    """A statistic of a ``(seeds, subjects)`` layout."""

    def point(self) -> float:
        """The statistic on the data as measured."""

    def resampled(self, draws: Draws) -> np.ndarray:
        """The statistic on every draw, ``(B,)`` (NaN where a draw leaves it undefined)."""


class MeanScore:
    """Mean of per-(seed, subject) values ``(S, J)``; NaN entries do not count."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.float64)

    def point(self) -> float:
        finite = np.isfinite(self.values)
        return float(self.values[finite].mean()) if finite.any() else float("nan")

    def resampled(self, draws: Draws) -> np.ndarray:
        picked = self.values[draws.seeds[:, :, None], draws.subjects[:, None, :]]
        finite = np.isfinite(picked)
        total = np.where(finite, picked, 0.0).sum(axis=(1, 2))
        count = finite.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class BalancedAccuracyScore:
    """Balanced accuracy (mean recall over classes), averaged over labels.

    Args:
        predictions: int ``(L, S, J)`` predicted class codes per label, seed and subject.
        targets: int ``(L, J)`` true class codes per label and subject (negative: no label,
            the subject does not count for that label).
    """

    def __init__(self, predictions: np.ndarray, targets: np.ndarray) -> None:
        self.predictions = np.asarray(predictions, dtype=np.int64)
        self.targets = np.asarray(targets, dtype=np.int64)

    def _stat(self, seeds: np.ndarray, subjects: np.ndarray) -> np.ndarray:
        per_label = []
        for pred, target in zip(self.predictions, self.targets):
            picked_target = target[subjects]  # (B, J)
            correct = pred[seeds[:, :, None], subjects[:, None, :]] == picked_target[:, None, :]
            recalls = []
            for k in np.unique(target[target >= 0]):
                of_k = picked_target == k
                hits = (correct & of_k[:, None, :]).sum(axis=(1, 2))
                total = of_k.sum(axis=1) * seeds.shape[1]
                with np.errstate(invalid="ignore", divide="ignore"):
                    recalls.append(np.where(total > 0, hits / np.maximum(total, 1), np.nan))
            stacked = np.stack(recalls)
            valid = np.isfinite(stacked)
            per_label.append(np.where(valid, stacked, 0).sum(0) / np.maximum(valid.sum(0), 1))
        return np.mean(np.stack(per_label), axis=0)

    def point(self) -> float:
        s, j = self.predictions.shape[1:]
        return float(self._stat(np.arange(s)[None], np.arange(j)[None])[0])

    def resampled(self, draws: Draws) -> np.ndarray:
        return self._stat(draws.seeds, draws.subjects)


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def interval(score: Score, draws: Draws, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(point, low, high)``: the score and its two-way bootstrap percentile interval."""
    return (score.point(), *_percentiles(score.resampled(draws), confidence))


def paired_interval(
    a: Score, b: Score, draws: Draws, confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(point, low, high)`` of the difference ``a - b`` on shared draws."""
    diff = a.resampled(draws) - b.resampled(draws)
    return (a.point() - b.point(), *_percentiles(diff, confidence))
