"""PNG plots of a benchmark (matplotlib, Agg backend; no display needed).

* ``tasks.png``: one panel per result column, a bar per method (mean over seeds) with its
  95% interval and a dot per seed;
* ``missing_modality.png``: mean Dice against the modalities kept at test time;
* ``low_label.png``: balanced accuracy against the fraction of labelled subjects;
* ``paired.png``: every paired comparison of a topology method (difference and 95% interval;
  a win only where the interval stays clear of 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightly_topo.benchmark.presets import INSTANCE_METHODS, TOPO_METHODS
from lightly_topo.benchmark.report import (
    COLUMNS,
    comparisons,
    extract_curves,
    extract_scores,
    ordered_methods,
    summarize,
)


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Grey for scratch, blues for instance-level baselines, oranges/reds for topology."""
    blues = ["#1f77b4", "#4a90c8", "#7fb2dc", "#08519c", "#6baed6"]
    warms = ["#d62728", "#ff7f0e", "#e6550d", "#a50f15", "#fdae6b"]
    colors: dict[str, str] = {}
    b = w = 0
    for method in methods:
        if method == "scratch":
            colors[method] = "#7f7f7f"
        elif method in TOPO_METHODS:
            colors[method] = warms[w % len(warms)]
            w += 1
        else:
            colors[method] = blues[b % len(blues)]
            b += 1
    return colors


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11})
    return plt


def _dodge(rank: int, count: int, width: float) -> float:
    """Offset of the ``rank``-th of ``count`` series so error bars do not overlap."""
    return 0.0 if count < 2 else width * (rank / (count - 1) - 0.5)


def _clip_unit(ax: Any) -> None:
    """Keep the y axis of a score in [0, 1] inside that range (t intervals can overshoot)."""
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, -0.02), min(high, 1.02))


def _half(summary: dict[str, Any]) -> float:
    half = summary["half_width"]
    return float(half) if isinstance(half, float) and math.isfinite(half) else 0.0


def _draw_curve(
    ax: Any,
    method: str,
    color: str,
    xs: Sequence[float],
    means: Sequence[float],
    halves: Sequence[float],
) -> None:
    """One method's means with 95% intervals: solid for topology methods, dashed for
    instance-level baselines, dotted for the rest."""
    style = "-" if method in TOPO_METHODS else "--" if method in INSTANCE_METHODS else ":"
    ax.errorbar(
        xs,
        means,
        yerr=halves,
        label=method,
        color=color,
        ls=style,
        marker="o",
        ms=4,
        capsize=2,
        lw=1.5,
    )


def _finish_curves(
    plt: Any, fig: Any, ax: Any, path: Path, xlabel: str, ylabel: str, title: str
) -> Path:
    """Label a curve plot's axes (score axis kept in [0, 1]), add the legend and save it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _clip_unit(ax)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_tasks(path: Path, records: Sequence[dict[str, Any]], methods: Sequence[str]) -> Path:
    plt = _pyplot()
    scores = extract_scores(records)
    colors = method_colors(methods)
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(3.3 * len(COLUMNS), 4.2))
    for ax, column in zip(axes, COLUMNS):
        for x, method in enumerate(methods):
            values = scores[column.key].get(method, {})
            summary = summarize(values)
            if summary["n"] == 0:
                ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=8)
                continue
            ax.bar(x, summary["mean"], color=colors[method], alpha=0.85, width=0.75)
            ax.errorbar(x, summary["mean"], yerr=_half(summary), color="black", capsize=3, lw=1)
            ax.scatter(
                [x] * len(values), list(values.values()), s=10, color="black", zorder=3, alpha=0.6
            )
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=50, ha="right", fontsize=9)
        if column.key != "mm_drop":
            _clip_unit(ax)
        ax.set_title(f"{column.header} {'↑' if column.higher_is_better else '↓'}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle("Downstream results: mean over seeds, 95% CI, dots = seeds", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_missing_modality(
    path: Path, records: Sequence[dict[str, Any]], methods: Sequence[str]
) -> Path | None:
    missing, _ = extract_curves(records)
    if not missing:
        return None
    plt = _pyplot()
    colors = method_colors(methods)
    subsets = list(next(iter(missing.values())))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(subsets) + 3), 4.5))
    shown = [m for m in methods if m in missing]
    for rank, method in enumerate(shown):
        offset = _dodge(rank, len(shown), 0.3)
        summaries = [summarize(missing[method].get(s, {})) for s in subsets]
        xs = [i + offset for i, s in enumerate(summaries) if s["n"]]
        kept = [s for s in summaries if s["n"]]
        means = [s["mean"] for s in kept]
        halves = [_half(s) for s in kept]
        _draw_curve(ax, method, colors[method], xs, means, halves)
    ax.set_xticks(range(len(subsets)))
    ax.set_xticklabels([s.replace("+", "\n+") for s in subsets], fontsize=8)
    return _finish_curves(
        plt,
        fig,
        ax,
        path,
        xlabel="modalities kept at test time (trained with all)",
        ylabel="mean Dice",
        title="Robustness to missing modalities (mean over seeds, 95% CI)",
    )


def plot_low_label(
    path: Path, records: Sequence[dict[str, Any]], methods: Sequence[str]
) -> Path | None:
    _, low = extract_curves(records)
    if not low:
        return None
    plt = _pyplot()
    colors = method_colors(methods)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    shown = [m for m in methods if m in low]
    for rank, method in enumerate(shown):
        factor = 10 ** _dodge(rank, len(shown), 0.06)
        fractions = sorted(low[method])
        summaries = [summarize(low[method][f]) for f in fractions]
        _draw_curve(
            ax,
            method,
            colors[method],
            [100 * f * factor for f in fractions],
            [s["mean"] for s in summaries],
            [_half(s) for s in summaries],
        )
    all_fractions = sorted({f for curve in low.values() for f in curve})
    ax.set_xscale("log")
    ax.set_xticks([100 * f for f in all_fractions])
    ax.set_xticklabels([f"{f:.0%}" for f in all_fractions])
    ax.minorticks_off()
    return _finish_curves(
        plt,
        fig,
        ax,
        path,
        xlabel="labelled training subjects",
        ylabel="balanced accuracy",
        title="Low-label classification (mean over seeds, 95% CI)",
    )


def plot_paired(
    path: Path, records: Sequence[dict[str, Any]], methods: Sequence[str]
) -> Path | None:
    rows = [r for r in comparisons(extract_scores(records), methods) if math.isfinite(r["mean"])]
    if not rows:
        return None
    plt = _pyplot()
    headers = {c.key: c for c in COLUMNS}
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.6))
    for y, row in enumerate(reversed(rows)):
        column = headers[row["column"]]
        sign = 1.0 if column.higher_is_better else -1.0
        mean, low, high = sign * row["mean"], sign * row["low"], sign * row["high"]
        low, high = min(low, high), max(low, high)
        color = {"wins": "#2ca02c", "loses": "#d62728"}.get(row["verdict"], "#7f7f7f")
        ax.plot([low, high], [y, y], color=color, lw=2)
        ax.plot(mean, y, "o", color=color, ms=5)
    labels = [
        f"{r['method']} vs {r['baseline']}: {headers[r['column']].header}" for r in reversed(rows)
    ]
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.axvline(0.0, color="black", lw=1)
    ax.set_xlabel("improvement of the topology method (95% paired CI; > 0 is better)")
    ax.set_title("Paired comparisons: green win, red loss, grey unclear", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(out: Path, records: Sequence[dict[str, Any]], meta: dict[str, Any]) -> list[Path]:
    """Write every plot into ``out``; returns the files written."""
    methods = ordered_methods(records, meta.get("preset", {}).get("methods", ()))
    written = [
        plot_tasks(out / "tasks.png", records, methods),
        plot_missing_modality(out / "missing_modality.png", records, methods),
        plot_low_label(out / "low_label.png", records, methods),
        plot_paired(out / "paired.png", records, methods),
    ]
    return [p for p in written if p is not None]
