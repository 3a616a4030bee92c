"""Confidence intervals for evaluation results (no SciPy needed).

The Student t quantile is computed from the regularized incomplete beta function (continued
fraction, Numerical Recipes §6.4) inverted by safeguarded Newton steps; it agrees with
``scipy.stats.t.ppf`` to about 1e-10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from torch import Tensor

Values = Tensor | np.ndarray | Sequence[float]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Cumulative distribution function of Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}.")
    if math.isinf(df):
        return NormalDist().cdf(t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def _t_pdf(t: float, df: float) -> float:
    log_pdf = (
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - (df + 1) / 2 * math.log1p(t * t / df)
    )
    return math.exp(log_pdf)


def t_ppf(q: float, df: float) -> float:
    """Quantile function (inverse CDF) of Student's t with ``df`` degrees of freedom.

    Args:
        q: Probability in ``(0, 1)``.
        df: Degrees of freedom (positive, may be fractional or ``inf``).

    Example:
        >>> round(t_ppf(0.975, 9), 6)
        2.262157
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}.")
    if df <= 0 or math.isnan(df):
        raise ValueError(f"df must be positive, got {df}.")
    if math.isinf(df):
        return NormalDist().inv_cdf(q)
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    # Bracket [lo, hi] with cdf(lo) <= q <= cdf(hi), then Newton steps kept inside it.
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    x = max(lo, min(hi, NormalDist().inv_cdf(q)))
    for _ in range(200):
        f = t_cdf(x, df) - q
        if f > 0:
            hi = x
        else:
            lo = x
        step = f / _t_pdf(x, df)
        candidate = x - step
        if not lo < candidate < hi:
            candidate = 0.5 * (lo + hi)
        if abs(candidate - x) <= 1e-13 * max(1.0, abs(x)):
            return candidate
        x = candidate
    return x


def _as_values(values: Values, name: str) -> np.ndarray:
    array = (
        values.detach().cpu().double().numpy()
        if isinstance(values, Tensor)
        else np.asarray(values, dtype=np.float64)
    )
    array = array.reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name} is empty.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; drop them first.")
    return array


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")


def mean_ci(values: Values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its Student t confidence interval.

    ``half_width = t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)`` with ``s`` the sample
    standard deviation (``ddof=1``). With a single value the half-width is undefined and
    returned as ``NaN``.

    Args:
        values: The observations (e.g. Dice per subject or accuracy per seed), flattened.
        confidence: Coverage of the interval.

    Returns:
        ``(mean, half_width)``: the interval is ``mean ± half_width``.

    Raises:
        ValueError: Empty values, NaN/inf values, or ``confidence`` outside ``(0, 1)``.

    Example:
        >>> mean, half = mean_ci([0.8, 0.82, 0.79, 0.85])
        >>> round(mean, 4), round(half, 4)
        (0.815, 0.0421)
    """
    _check_confidence(confidence)
    x = _as_values(values, "values")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan")
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, t_ppf(0.5 + confidence / 2.0, x.size - 1) * sem


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over paired observations with its confidence interval.

    Attributes:
        mean: Mean difference.
        low: Lower end of the interval.
        high: Upper end of the interval.
        p_value: Two-sided p-value of "mean difference is 0" (paired t test); ``None``
            for the bootstrap.
        method: ``"t"`` or ``"bootstrap"``.
        n: Number of pairs.
    """

    mean: float
    low: float
    high: float
    p_value: float | None
    method: str
    n: int


def paired_difference_ci(
    a: Values,
    b: Values,
    confidence: float = 0.95,
    method: Literal["t", "bootstrap"] = "t",
    num_bootstrap: int = 10_000,
    seed: int = 0,
) -> PairedDifference:
    """Confidence interval of the mean paired difference ``a - b``.

    Use it to compare two methods evaluated on the same subjects (or seeds/folds).

    * ``method="t"``: paired t interval and two-sided paired t test.
    * ``method="bootstrap"``: percentile interval of the mean difference over
      ``num_bootstrap`` resamples of the pairs (seeded; no p-value).

    Args:
        a: Scores of the first method, one per pair.
        b: Scores of the second method, aligned with ``a``.
        confidence: Coverage of the interval.
        method: ``"t"`` or ``"bootstrap"``.
        num_bootstrap: Number of bootstrap resamples.
        seed: Seed of the bootstrap resampling.

    Raises:
        ValueError: Different lengths, fewer than two pairs, NaN values, bad ``confidence``,
            ``method`` or ``num_bootstrap``.

    Example:
        >>> diff = paired_difference_ci([0.80, 0.82, 0.85, 0.90], [0.78, 0.80, 0.80, 0.86])
        >>> round(diff.mean, 4), diff.low > 0
        (0.0325, True)
    """
    _check_confidence(confidence)
    x, y = _as_values(a, "a"), _as_values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must be paired (same length), got {x.size} and {y.size}.")
    if x.size < 2:
        raise ValueError(f"paired_difference_ci needs at least two pairs, got {x.size}.")
    d = x - y
    mean = float(d.mean())
    if method == "t":
        sem = float(d.std(ddof=1)) / math.sqrt(d.size)
        df = d.size - 1
        half = t_ppf(0.5 + confidence / 2.0, df) * sem
        if sem == 0.0:
            p_value = 1.0 if mean == 0.0 else 0.0
        else:
            t = mean / sem
            p_value = _betainc(df / 2.0, 0.5, df / (df + t * t))
        return PairedDifference(mean, mean - half, mean + half, p_value, "t", int(d.size))
    if method == "bootstrap":
        if num_bootstrap < 1:
            raise ValueError(f"num_bootstrap must be positive, got {num_bootstrap}.")
        rng = np.random.default_rng(seed)
        means = d[rng.integers(0, d.size, size=(num_bootstrap, d.size))].mean(axis=1)
        alpha = (1.0 - confidence) / 2.0
        low, high = np.quantile(means, [alpha, 1.0 - alpha])
        return PairedDifference(mean, float(low), float(high), None, "bootstrap", int(d.size))
    raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}.")
