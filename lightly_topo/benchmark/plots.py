"""Plots of a benchmark report (matplotlib, Agg): the headline columns with their intervals
and the modality-subset curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightly_topo.benchmark.presets import INTENSITY
from lightly_topo.benchmark.scores import HEADLINE, ScoreTable, probe_results, row_order

#: Fixed colours: the floor and the controls grey, the methods a qualitative palette.
_FIXED = {INTENSITY: "#bbbbbb", "scratch": "#888888", "supervised": "#333333"}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """A colour per method, stable for a given method list."""
    others = [m for m in methods if m not in _FIXED]
    colors = {m: _PALETTE[i % len(_PALETTE)] for i, m in enumerate(others)}
    colors.update({m: c for m, c in _FIXED.items() if m in methods})
    return colors


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_headline(path: Path, table: ScoreTable) -> Path:
    """One panel per headline column: each method's value and 95% interval."""
    plt = _pyplot()
    colors = method_colors(table.methods)
    fig, axes = plt.subplots(1, len(HEADLINE), figsize=(4.2 * len(HEADLINE), 4.2))
    for ax, column in zip(np.atleast_1d(axes), HEADLINE):
        for i, method in enumerate(table.methods):
            s = table.summary(method, column)
            if not np.isfinite(s.point):
                continue
            err = [[s.point - s.low], [s.high - s.point]] if np.isfinite(s.low) else None
            ax.bar(i, s.point, color=colors[method], yerr=err, capsize=3)
        ax.set_xticks(range(len(table.methods)))
        ax.set_xticklabels(table.methods, rotation=60, ha="right", fontsize=8)
        ax.set_title(table.header(column), fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Frozen-encoder probes: mean and 95% two-way bootstrap interval", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_subsets(path: Path, table: ScoreTable) -> Path:
    """Deep grey Dice of the fused probe per modality subset kept at test time."""
    plt = _pyplot()
    colors = method_colors(table.methods)
    subsets = list(table.results[table.methods[0]][table.seeds[0]]["subsets"])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(subsets)), 4.2))
    for method in table.methods:
        means = []
        for subset in subsets:
            values = [
                v
                for s in table.seeds
                for v in table.results[method][s]["subsets"][subset]["headline"]
                if v is not None
            ]
            means.append(np.mean(values) if values else np.nan)
        ax.plot(range(len(subsets)), means, marker="o", label=method, color=colors[method])
    ax.set_xticks(range(len(subsets)))
    ax.set_xticklabels(subsets, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("deep grey Dice (fused probe)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Modalities kept at test time", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(out: Path, records: Sequence[dict[str, Any]], meta: dict[str, Any]) -> list[Path]:
    """``headline.png`` and ``subsets.png`` (none without probe results)."""
    results = probe_results(records)
    table = ScoreTable(results, row_order(list(results), meta.get("preset", {}).get("methods", ())))
    if not table.methods or not table.seeds:
        return []
    return [plot_headline(out / "headline.png", table), plot_subsets(out / "subsets.png", table)]
