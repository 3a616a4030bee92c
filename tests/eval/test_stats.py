from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from lightly_topo.eval.stats import mean_ci, paired_difference_ci, t_cdf, t_ppf


@pytest.mark.parametrize("df", [1, 2, 3, 4.5, 7, 10, 29, 100, 1000])
def test_t_ppf_and_cdf_match_scipy(df: float) -> None:
    for q in (0.001, 0.025, 0.05, 0.3, 0.5, 0.8, 0.95, 0.975, 0.995, 0.9999):
        assert t_ppf(q, df) == pytest.approx(scipy.stats.t.ppf(q, df), rel=1e-9, abs=1e-12)
    for t in (-30.0, -2.5, -0.1, 0.0, 0.7, 3.0, 12.0):
        assert t_cdf(t, df) == pytest.approx(scipy.stats.t.cdf(t, df), rel=1e-9, abs=1e-14)


def test_t_ppf_infinite_df_and_errors() -> None:
    assert t_ppf(0.975, math.inf) == pytest.approx(scipy.stats.norm.ppf(0.975), rel=1e-12)
    with pytest.raises(ValueError, match="q must be"):
        t_ppf(1.0, 3)
    with pytest.raises(ValueError, match="df must be"):
        t_ppf(0.5, 0)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_mean_ci_matches_scipy(confidence: float) -> None:
    values = np.random.default_rng(0).normal(0.7, 0.1, 12)
    mean, half = mean_ci(torch.from_numpy(values), confidence)
    low, high = scipy.stats.t.interval(
        confidence, 11, loc=values.mean(), scale=scipy.stats.sem(values)
    )
    assert mean == pytest.approx(values.mean())
    assert mean - half == pytest.approx(low, rel=1e-9)
    assert mean + half == pytest.approx(high, rel=1e-9)


def test_mean_ci_edge_cases() -> None:
    mean, half = mean_ci([0.5])
    assert mean == 0.5 and math.isnan(half)
    assert mean_ci([1.0, 1.0, 1.0]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=1.0)


def test_paired_t_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.8, 0.05, 15)
    b = a - rng.normal(0.02, 0.03, 15)
    result = paired_difference_ci(a, b)
    test = scipy.stats.ttest_rel(a, b)
    low, high = test.confidence_interval(0.95)
    assert result.method == "t" and result.n == 15
    assert result.mean == pytest.approx(np.mean(a - b))
    assert result.low == pytest.approx(low, rel=1e-9)
    assert result.high == pytest.approx(high, rel=1e-9)
    assert result.p_value == pytest.approx(test.pvalue, rel=1e-7)


def test_paired_bootstrap() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0.8, 0.05, 40)
    b = a - rng.normal(0.02, 0.03, 40)
    boot = paired_difference_ci(a, b, method="bootstrap", num_bootstrap=4000, seed=3)
    again = paired_difference_ci(a, b, method="bootstrap", num_bootstrap=4000, seed=3)
    t = paired_difference_ci(a, b)
    assert boot == again
    assert boot.p_value is None
    assert boot.low < boot.mean < boot.high
    # The bootstrap interval of a mean is close to the t interval for 40 near-normal pairs.
    assert boot.low == pytest.approx(t.low, abs=0.004)
    assert boot.high == pytest.approx(t.high, abs=0.004)


def test_paired_errors() -> None:
    with pytest.raises(ValueError, match="paired"):
        paired_difference_ci([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="two pairs"):
        paired_difference_ci([1.0], [1.0])
    with pytest.raises(ValueError, match="method"):
        paired_difference_ci([1.0, 2.0], [1.0, 3.0], method="wilcoxon")  # type: ignore[arg-type]
