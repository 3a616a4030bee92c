"""The benchmark report: ``results.md``, ``results.csv``, ``results.json`` and plots.

The Markdown report opens with the instrument check (does the positive control beat
``scratch`` on every headline column?), then the headline table with the raw-intensity
floor and chance, the paired comparisons of the topology methods and a plain verdict,
secondary columns, per-structure Dice, the modality subsets, the subject labels, the
pretraining budget per method and how the intervals are computed. Scores:
:mod:`lightly_topo.benchmark.scores`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightly_topo.benchmark.presets import INTENSITY
from lightly_topo.benchmark.scores import (
    HEADLINE,
    SECONDARY,
    Column,
    ScoreTable,
    control_line,
    instrument_check,
    probe_results,
    row_order,
)

#: Labels of the rows.
ROW_NOTES = {
    INTENSITY: "raw-intensity floor",
    "scratch": "negative control: frozen random init",
    "supervised": "positive control",
}


def _fmt(summary: Any, column: Column, digits: int = 3) -> str:
    if not math.isfinite(summary.point):
        return "n/a"
    if not (math.isfinite(summary.low) and math.isfinite(summary.high)):
        return f"{summary.point:.{digits}f}"
    return f"{summary.point:.{digits}f} ± {summary.half_width:.{digits}f}"


def _fmt_diff(row: dict[str, Any], digits: int = 3) -> str:
    if not math.isfinite(row["mean"]):
        return "n/a"
    return f"{row['mean']:+.{digits}f} [{row['low']:+.{digits}f}, {row['high']:+.{digits}f}]"


def _table(table: ScoreTable, columns: Sequence[Column], notes: bool = True) -> list[str]:
    lines = [
        "| method | "
        + " | ".join(table.header(c) + (" ↑" if c.higher_is_better else " ↓") for c in columns)
        + " |",
        "|---|" + "---|" * len(columns),
    ]
    best: dict[str, str | None] = {
        c.key: table.best(c, [m for m in table.methods if m != INTENSITY]) for c in columns
    }
    for method in table.methods:
        cells = []
        for column in columns:
            text = _fmt(table.summary(method, column), column)
            if best[column.key] == method and text != "n/a":
                text = f"**{text}**"
            cells.append(text)
        name = f"{method} ({ROW_NOTES[method]})" if notes and method in ROW_NOTES else method
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def chance_levels(table: ScoreTable) -> dict[str, float]:
    """Balanced-accuracy chance (1 / classes) of each subject label and their mean."""
    if not table.methods or not table.seeds:
        return {}
    labels = table.results[table.methods[0]][table.seeds[0]]["subject_labels"]
    levels = {name: 1.0 / len(v["classes"]) for name, v in sorted(labels.items())}
    if levels:
        levels["mean"] = float(np.mean(list(levels.values())))
    return levels


def _against(row: dict[str, Any]) -> str:
    """``scratch`` or ``mae (best instance-level baseline)``."""
    if row["against"] == row["baseline"]:
        return str(row["baseline"])
    return f"{row['baseline']} ({row['against']})"


def verdict_lines(
    comparisons: Sequence[dict[str, Any]], check: dict[str, Any], table: ScoreTable
) -> list[str]:
    """Plain-language verdicts of the topology methods."""
    if not check["passed"]:
        return [
            "No verdict: the instrument check failed, so differences between methods in this "
            "run are not evidence either way."
        ]
    headers = {c.key: table.header(c) for c in HEADLINE}
    wins = [r for r in comparisons if r["verdict"] == "wins"]
    losses = [r for r in comparisons if r["verdict"] == "loses"]
    lines = []
    for row in wins:
        lines.append(
            f"- **{row['method']} beats {_against(row)}** on "
            f"{headers[row['column']]}: {_fmt_diff(row)}."
        )
    for row in losses:
        lines.append(
            f"- {row['method']} is worse than {_against(row)} on "
            f"{headers[row['column']]}: {_fmt_diff(row)}."
        )
    undecided = len(comparisons) - len(wins) - len(losses)
    if undecided:
        lines.append(
            f"- {undecided} of {len(comparisons)} comparisons: no difference the run can "
            "resolve (the paired interval contains 0)."
        )
    if not wins:
        lines.insert(
            0,
            "**Topology alignment does not win here**: no paired interval of a topology "
            "method against scratch or the best instance-level baseline lies above 0.",
        )
    return lines


def markdown(
    records: Sequence[dict[str, Any]], meta: dict[str, Any], plots: Sequence[str] = ()
) -> tuple[str, dict[str, Any]]:
    """The Markdown report and the summary it shows (for ``results.json``)."""
    results = probe_results(records)
    preset = meta.get("preset", {})
    table = ScoreTable(results, row_order(list(results), preset.get("methods", ())))
    check = instrument_check(table)
    comparisons = table.comparisons()
    commit = str(meta.get("commit", "unknown"))
    dirty = " with uncommitted changes" if commit.endswith("-dirty") else ""
    lines = [f"# lightly-topo benchmark: `{preset.get('name', '?')}` preset", ""]
    if check["passed"]:
        lines.append(
            f"**Instrument check: passed.** {check['reason'].capitalize()} (paired 95% intervals "
            "above 0), so this run can see a difference known to exist."
        )
    else:
        lines.append(
            f"**Instrument check: FAILED. This run cannot rank methods:** {check['reason']}. "
            "A difference between methods below is not evidence; use a larger preset "
            "(`standard`) or budget."
        )
    for row in check["columns"]:
        lines.append(
            f"- supervised − scratch, {table.header(next(c for c in HEADLINE if c.key == row['column']))}: "
            f"{_fmt_diff(row)} ({row['verdict']})"
        )
    machine = meta.get("machine", {})
    lines += [
        "",
        f"Produced by commit `{commit.removesuffix('-dirty')[:12]}`{dirty} "
        f"({meta.get('version', '?')}) with "
        f"`{meta.get('command', '')}` on {meta.get('date', '?')}: {machine.get('processor', '?')}, "
        f"{machine.get('cpu_count', '?')} CPUs, torch {machine.get('torch', '?')}, device "
        f"{meta.get('device', '?')} ({machine.get('cuda_device', 'cpu')}); wall time "
        f"{meta.get('wall_s', float('nan')):.0f} s (estimated {meta.get('estimated_s', float('nan')):.0f} s"
        f"; {meta.get('records_reused', 0)} records reused). Seeds {table.seeds}.",
        "",
        meta.get("design", ""),
        "",
        "## Headline",
        "",
        "Mean ± half-width of the 95% two-way bootstrap interval (seeds and test subjects "
        "resampled). Bold: best method (floor excluded).",
        "",
        *_table(table, HEADLINE),
    ]
    chance = chance_levels(table)
    if chance:
        lines += [
            "",
            f"Chance balanced accuracy of the subject labels: {chance['mean']:.3f} "
            "(" + ", ".join(f"{k} {v:.3f}" for k, v in chance.items() if k != "mean") + ").",
        ]
    for plot in plots:
        lines += ["", f"![{Path(plot).stem}]({Path(plot).name})"]
    lines += ["", "## Paired comparisons", ""]
    if comparisons:
        lines += [
            "Each topology method minus scratch and minus the best instance-level baseline of "
            "the column; 95% interval; a win only where the interval lies above 0.",
            "",
            "| method | against | column | difference [95% CI] | verdict |",
            "|---|---|---|---|---|",
        ]
        headers = {c.key: table.header(c) for c in HEADLINE}
        for row in comparisons:
            lines.append(
                f"| {row['method']} | {_against(row)} | "
                f"{headers[row['column']]} | {_fmt_diff(row)} | {row['verdict']} |"
            )
    else:
        lines.append("No topology method in this run.")
    lines += ["", "## Verdict", "", *verdict_lines(comparisons, check, table)]
    label_columns = table.label_columns()
    lines += ["", "## Secondary columns", "", *_table(table, SECONDARY, notes=False), ""]
    lines += [
        "Positive control on each secondary column (supervised − scratch; only where it "
        "wins can the column rank methods):",
        "",
    ]
    for row in control_line(table, SECONDARY):
        header = table.header(next(c for c in SECONDARY if c.key == row["column"]))
        lines.append(f"- {header}: {_fmt_diff(row)} ({row['verdict']})")
    if label_columns:
        lines += [
            "",
            "## Subject labels (linear probe)",
            "",
            *_table(table, label_columns, notes=False),
        ]
    lines += ["", "## Dice per structure (per-modality probe, mean over seeds and subjects)", ""]
    lines += _per_structure(table)
    lines += ["", "## Modality subsets (fused probe)", ""]
    lines += _subsets(table)
    lines += ["", "## Pretraining", "", *_pretraining(records)]
    lines += [
        "",
        "## How to read it",
        "",
        "Intervals: each score is a mean over seeds and test subjects; its interval resamples "
        "both independently (2000 draws), so it accounts for pretraining seeds and test "
        "subjects. Paired differences use the same draws for both methods. Dice is averaged "
        "over the subjects that have the class; false positives on subjects without it are "
        "their own column. Every encoder is frozen: dense linear probes (shrinkage LDA) on "
        "the multi-scale features, per modality (side by side) or fused (mean over "
        "modalities); a logistic-regression and a kNN probe on pooled features (mean, max "
        "and octant means per modality and level).",
    ]
    summary = {
        "instrument_check": check,
        "comparisons": comparisons,
        "seeds": table.seeds,
        "chance": chance,
        "table": {
            c.key: {m: table.summary(m, c).to_dict() for m in table.methods}
            for c in (*HEADLINE, *SECONDARY, *label_columns)
        },
    }
    return "\n".join(lines) + "\n", summary


def _per_structure(table: ScoreTable) -> list[str]:
    if not table.methods or not table.seeds:
        return ["No probe results."]
    first = table.results[table.methods[0]][table.seeds[0]]
    names = first["class_names"]
    means = {}
    for method in table.methods:
        values = np.array(
            [
                [
                    [math.nan if v is None else v for v in row]
                    for row in table.results[method][s]["dense"]["per_modality"]["dice"]
                ]
                for s in table.seeds
            ],
            dtype=np.float64,
        )
        with np.errstate(invalid="ignore"):
            means[method] = np.nanmean(values, axis=(0, 1))
    lines = [
        "| structure | " + " | ".join(table.methods) + " |",
        "|---|" + "---|" * len(table.methods),
    ]
    for k, name in enumerate(names):
        if k == 0:
            continue
        cells = [
            "n/a" if not math.isfinite(means[m][k]) else f"{means[m][k]:.3f}" for m in table.methods
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _subsets(table: ScoreTable) -> list[str]:
    if not table.methods or not table.seeds:
        return ["No probe results."]
    subsets = list(table.results[table.methods[0]][table.seeds[0]]["subsets"])
    lines = [
        f"{table.header(HEADLINE[1]).split(' Dice')[0]} Dice / lesion Dice per subset kept "
        "at test time (n: subjects that have every modality of the subset).",
        "",
        "| method | " + " | ".join(subsets) + " |",
        "|---|" + "---|" * len(subsets),
    ]
    n_row = []
    for subset in subsets:
        rows = table.results[table.methods[0]][table.seeds[0]]["subsets"][subset]["headline"]
        n_row.append(str(sum(v is not None for v in rows)))
    lines.append("| n | " + " | ".join(n_row) + " |")
    for method in table.methods:
        cells = []
        for subset in subsets:
            parts = []
            for field in ("headline", "lesion"):
                values = [
                    v
                    for s in table.seeds
                    for v in table.results[method][s]["subsets"][subset][field]
                    if v is not None
                ]
                parts.append(f"{np.mean(values):.3f}" if values else "n/a")
            cells.append(" / ".join(parts))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _pretraining(records: Sequence[dict[str, Any]]) -> list[str]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("kind") == "pretrain":
            rows.setdefault(record["method"], []).append(record)
    if not rows:
        return ["No pretraining in this run."]
    lines = [
        "Budget: the same number of encoded single-modality volumes for every method (steps "
        "= volumes / volumes per step); wall time as measured on this machine.",
        "",
        "| method | runs ok | steps | encoded volumes | final loss (mean) | wall s per run |",
        "|---|---|---|---|---|---|",
    ]
    for method in row_order(list(rows)):
        ok = [r for r in rows[method] if r.get("status") == "ok"]
        steps = sorted({int(r.get("steps", 0)) for r in ok})
        volumes = sorted({int(r.get("volumes", 0)) for r in ok})
        losses = [r["final_loss"] for r in ok if isinstance(r.get("final_loss"), float)]
        wall = [r["wall_s"] for r in ok if isinstance(r.get("wall_s"), float)]
        lines.append(
            f"| {method} | {len(ok)}/{len(rows[method])} | {', '.join(map(str, steps))} | "
            f"{', '.join(map(str, volumes))} | {np.mean(losses):.3f} | {np.mean(wall):.1f} |"
            if ok and losses and wall
            else f"| {method} | {len(ok)}/{len(rows[method])} | n/a | n/a | n/a | n/a |"
        )
    return lines


def csv_text(summary: dict[str, Any]) -> str:
    """One row per (column, method): mean and 95% interval."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["column", "method", "mean", "low", "high", "half_width"])
    for column, methods in summary["table"].items():
        for method, s in methods.items():
            writer.writerow(
                [column, method, *(f"{s[k]:.6f}" for k in ("mean", "low", "high", "half_width"))]
            )
    return buffer.getvalue()


def _atomic_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_report(
    out: Path, records: Sequence[dict[str, Any]], meta: dict[str, Any]
) -> tuple[list[Path], bool]:
    """Write the report files into ``out``; returns them and whether the instrument check
    passed."""
    from lightly_topo.benchmark.plots import write_plots
    from lightly_topo.eval.tasks import _jsonable

    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(out, records, meta)
    text, summary = markdown(records, meta, [str(p) for p in plots])
    files = [
        _atomic_text(out / "results.md", text),
        _atomic_text(out / "results.csv", csv_text(summary)),
        _atomic_text(
            out / "results.json",
            json.dumps(_jsonable({"meta": meta, **summary}), indent=1, allow_nan=False),
        ),
        *plots,
    ]
    return files, bool(summary["instrument_check"]["passed"])
