"""Aggregate benchmark records into tables, paired comparisons and report files.

Scores per (method, seed) are read from the run records (:mod:`lightly_topo.benchmark.runner`):

* ``seg_dice``: mean Dice of the segmentation model tested with every modality;
* ``mm_mean``: its mean Dice over every non-empty modality subset kept at test time;
* ``mm_drop``: the mean Dice lost when modalities are missing (lower is better);
* ``cls_bacc``: balanced accuracy of the classifier trained on every labelled subject;
* ``cls_low``: balanced accuracy at the smallest label fraction.

Each column is summarised by its mean over seeds and the half-width of the 95% Student t
interval (:func:`~lightly_topo.eval.stats.mean_ci`). Paired comparisons
(:func:`~lightly_topo.eval.stats.paired_difference_ci`, paired over seeds: same split, same
downstream schedule) put every topology method against ``scratch`` and against the best
instance-level baseline of the column; a "win" is claimed only where the interval excludes 0.

>>> records = [
...     {"kind": "downstream", "task": "classification", "method": m, "seed": s, "status": "ok",
...      "result": {"metric": "balanced_accuracy",
...                 "curve": [{"fraction": 1.0, "n_labelled": 8, "metric": v}]}}
...     for m, s, v in [("scratch", 0, 0.5), ("scratch", 1, 0.6), ("taco", 0, 0.7), ("taco", 1, 0.8)]
... ]
>>> scores = extract_scores(records)
>>> scores["cls_bacc"]["taco"]
{0: 0.7, 1: 0.8}
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightly_topo.benchmark.presets import ALL_METHODS, INSTANCE_METHODS, TOPO_METHODS
from lightly_topo.eval.stats import mean_ci, paired_difference_ci


@dataclass(frozen=True)
class Column:
    """A result column: key, header, whether higher is better, unit scale for display."""

    key: str
    header: str
    higher_is_better: bool = True


COLUMNS: tuple[Column, ...] = (
    Column("seg_dice", "Segmentation Dice"),
    Column("mm_mean", "Dice, mean over modality subsets"),
    Column("mm_drop", "Dice lost to missing modalities", higher_is_better=False),
    Column("cls_bacc", "Classification bal. acc."),
    Column("cls_low", "Bal. acc., fewest labels"),
)

Scores = dict[str, dict[str, dict[int, float]]]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def extract_scores(records: Sequence[dict[str, Any]]) -> Scores:
    """``scores[column][method][seed]``: finite values only (missing/NaN runs left out)."""
    scores: Scores = {c.key: {} for c in COLUMNS}

    def put(key: str, method: str, seed: int, value: Any) -> None:
        if _finite(value):
            scores[key].setdefault(method, {})[int(seed)] = float(value)

    for record in records:
        if record.get("kind") != "downstream" or record.get("status") != "ok":
            continue
        method, seed, result = record["method"], record["seed"], record["result"]
        if record["task"] == "segmentation":
            metrics = result["metrics"]
            put("seg_dice", method, seed, metrics.get("full"))
            put("mm_mean", method, seed, metrics.get("mean"))
            put("mm_drop", method, seed, metrics.get("mean_drop"))
        elif record["task"] == "classification":
            curve = sorted(result["curve"], key=lambda p: p["fraction"])
            full = [p for p in curve if p["fraction"] == 1.0]
            if full:
                put("cls_bacc", method, seed, full[0]["metric"])
            if curve and curve[0]["fraction"] < 1.0:
                put("cls_low", method, seed, curve[0]["metric"])
    return scores


def extract_curves(
    records: Sequence[dict[str, Any]],
) -> tuple[dict[str, dict[str, dict[int, float]]], dict[str, dict[float, dict[int, float]]]]:
    """Missing-modality curve ``[method][subset][seed]`` (subsets ordered as run: full set,
    then by size) and low-label curve ``[method][fraction][seed]``."""
    missing: dict[str, dict[str, dict[int, float]]] = {}
    low: dict[str, dict[float, dict[int, float]]] = {}
    for record in records:
        if record.get("kind") != "downstream" or record.get("status") != "ok":
            continue
        method, seed, result = record["method"], int(record["seed"]), record["result"]
        if record["task"] == "segmentation":
            for row in result["metrics"]["subsets"]:
                if _finite(row.get("metric")):
                    missing.setdefault(method, {}).setdefault(row["name"], {})[seed] = float(
                        row["metric"]
                    )
        elif record["task"] == "classification":
            for point in result["curve"]:
                if _finite(point.get("metric")):
                    low.setdefault(method, {}).setdefault(float(point["fraction"]), {})[seed] = (
                        float(point["metric"])
                    )
    return missing, low


def summarize(values: dict[int, float]) -> dict[str, Any]:
    """Mean, 95% CI half-width (``NaN`` below two values), n and the values by seed."""
    ordered = [values[s] for s in sorted(values)]
    if not ordered:
        return {"mean": math.nan, "half_width": math.nan, "n": 0, "values": {}}
    mean, half = mean_ci(ordered)
    return {
        "mean": mean,
        "half_width": half,
        "n": len(ordered),
        "values": dict(sorted(values.items())),
    }


def summary_table(scores: Scores, methods: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``table[column][method]`` = :func:`summarize` of the method's values."""
    return {c.key: {m: summarize(scores[c.key].get(m, {})) for m in methods} for c in COLUMNS}


def best_method(
    table: dict[str, dict[str, Any]], column: Column, among: Sequence[str]
) -> str | None:
    """The method with the best mean in ``column`` among ``among`` (``None`` if none has one)."""
    candidates = [m for m in among if m in table and _finite(table[m]["mean"])]
    if not candidates:
        return None
    sign = 1.0 if column.higher_is_better else -1.0
    return max(candidates, key=lambda m: (sign * table[m]["mean"], -list(among).index(m)))


def paired(
    scores: dict[str, dict[int, float]], a: str, b: str, column: Column, min_pairs: int = 3
) -> dict[str, Any]:
    """Paired difference ``a - b`` over the seeds both have, with a verdict for ``a``.

    Verdict: ``"wins"`` where the 95% interval excludes 0 on the better side, ``"loses"``
    where it excludes 0 on the worse side, ``"no clear difference"`` otherwise. No claim is
    made from fewer than ``min_pairs`` pairs (``"too few seeds"``; the interval is still
    given from two pairs on) or from identical differences at every seed (``"cannot tell
    (no spread)"``: a zero-width interval from a handful of discrete scores is no evidence).
    """
    seeds = sorted(set(scores.get(a, {})) & set(scores.get(b, {})))
    out: dict[str, Any] = {"method": a, "baseline": b, "column": column.key, "n": len(seeds)}
    if len(seeds) < 2:
        out.update(
            mean=math.nan, low=math.nan, high=math.nan, p_value=None, verdict="too few seeds"
        )
        return out
    diff = paired_difference_ci([scores[a][s] for s in seeds], [scores[b][s] for s in seeds])
    better = diff.low > 0 if column.higher_is_better else diff.high < 0
    worse = diff.high < 0 if column.higher_is_better else diff.low > 0
    if len(seeds) < min_pairs:
        verdict = "too few seeds"
    elif diff.high - diff.low <= 1e-12:
        verdict = "cannot tell (no spread)"
    else:
        verdict = "wins" if better else "loses" if worse else "no clear difference"
    out.update(mean=diff.mean, low=diff.low, high=diff.high, p_value=diff.p_value, verdict=verdict)
    return out


def comparisons(scores: Scores, methods: Sequence[str]) -> list[dict[str, Any]]:
    """Every topology method against ``scratch`` and the column's best instance baseline."""
    table = summary_table(scores, methods)
    instance = [m for m in methods if m in INSTANCE_METHODS]
    rows: list[dict[str, Any]] = []
    for method in [m for m in methods if m in TOPO_METHODS]:
        for column in COLUMNS:
            if "scratch" in methods:
                row = paired(scores[column.key], method, "scratch", column)
                row["against"] = "scratch"
                rows.append(row)
            best = best_method(table[column.key], column, instance)
            if best is not None:
                row = paired(scores[column.key], method, best, column)
                row["against"] = "best instance-level baseline"
                rows.append(row)
    return rows


# ------------------------------------------------------------------------------ formatting
def fmt_ci(summary: dict[str, Any], digits: int = 3) -> str:
    """``"0.812 ± 0.034"``; ``"n/a"`` without values; ``"0.812 (n=1)"`` without an interval."""
    mean, half = summary["mean"], summary["half_width"]
    if not _finite(mean):
        return "n/a"
    if not _finite(half):
        return f"{mean:.{digits}f} (n={summary['n']})"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def fmt_diff(row: dict[str, Any], digits: int = 3) -> str:
    if not _finite(row["mean"]):
        return "n/a"
    return f"{row['mean']:+.{digits}f} [{row['low']:+.{digits}f}, {row['high']:+.{digits}f}]"


def ordered_methods(records: Sequence[dict[str, Any]], preferred: Sequence[str] = ()) -> list[str]:
    """Methods of the records, in the preset's order (then the canonical order)."""
    found = {r["method"] for r in records if "method" in r}
    order = [m for m in preferred if m in found]
    order += [m for m in ALL_METHODS if m in found and m not in order]
    order += sorted(found - set(order))
    return order


def markdown(
    records: Sequence[dict[str, Any]], meta: dict[str, Any], plots: Sequence[str] = ()
) -> str:
    """The Markdown report."""
    methods = ordered_methods(records, meta.get("preset", {}).get("methods", ()))
    scores = extract_scores(records)
    table = summary_table(scores, methods)
    comps = comparisons(scores, methods)
    missing, low = extract_curves(records)
    preset = meta.get("preset", {})
    seeds = meta.get("seeds", [])
    lines = [f"# lightly-topo benchmark: preset `{preset.get('name', '?')}`", ""]
    if preset.get("description"):
        lines += [f"*{preset['description']}.*", ""]
    if meta.get("runs_not_done"):
        lines += [
            f"> **Incomplete**: the time budget ran out with {meta['runs_not_done']} runs not "
            "done; cells below use the finished runs only. Run the same command again to "
            "finish them.",
            "",
        ]
    lines += [
        meta.get("design", ""),
        "",
        f"Mean ± half-width of the 95% Student t confidence interval over {len(seeds)} seeds "
        f"({', '.join(str(s) for s in seeds)}); "
        + (
            "each seed is one fold of a k-fold cross-validation (folds share training "
            "subjects, so the interval is approximate), shared by every method."
            if preset.get("split") == "kfold"
            else "each seed has its own subject split, shared by every method."
        )
        + " **Bold**: best mean of the column. Segmentation and missing-modality "
        "columns come from one model per (method, seed) fine-tuned with every modality; "
        "classification is a "
        f"{'linear probe on the frozen encoder' if preset.get('cls_mode') == 'linear' else 'fine-tuned encoder'}"
        f" predicting `{preset.get('cls_label', '?')}`"
        + (
            f"; the fewest-labels column uses {min(preset['low_label_fractions']):.0%} of the "
            "training subjects."
            if preset.get("low_label_fractions")
            else "."
        ),
        "",
    ]
    header = "| method | " + " | ".join(
        f"{c.header} {'↑' if c.higher_is_better else '↓'}" for c in COLUMNS
    )
    lines += [header + " | pretraining s |", "|---" * (len(COLUMNS) + 2) + "|"]
    pretrain_wall = _pretrain_wall(records)
    for method in methods:
        cells = []
        for column in COLUMNS:
            text = fmt_ci(table[column.key][method])
            if best_method(table[column.key], column, methods) == method:
                text = f"**{text}**"
            cells.append(text)
        wall = pretrain_wall.get(method)
        failed = _failed(records, method)
        wall_text = "—" if method == "scratch" else (f"{wall:.0f}" if wall is not None else "n/a")
        if failed:
            wall_text += f" ({failed} failed)"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {wall_text} |")
    lines += [
        "",
        "The Dice lost to missing modalities is small for a model that segments nothing: "
        "read it together with the segmentation Dice. Scores near chance (balanced accuracy "
        "1 / number of classes) mean the encoder's features did not carry the label at this "
        "budget.",
    ]
    lines += ["", "## Does topology alignment win? (paired over seeds)", ""]
    lines += [
        "Difference = topology method minus baseline, mean over seeds with its 95% paired t "
        "interval. *wins* / *loses* only where the interval excludes 0 (for the Dice lost to "
        "missing modalities, lower is better), and never from fewer than 3 seeds. The best instance-level baseline "
        f"({', '.join(m for m in INSTANCE_METHODS if m in methods) or 'none run'}) is picked "
        "per column on these same results, which favours the baseline.",
        "",
        "| topology method | column | against | difference [95% CI] | verdict |",
        "|---|---|---|---|---|",
    ]
    headers = {c.key: c.header for c in COLUMNS}
    for row in comps:
        against = (
            row["baseline"] if row["against"] == "scratch" else f"{row['baseline']} (best instance)"
        )
        verdict = f"**{row['verdict']}**" if row["verdict"] == "wins" else row["verdict"]
        lines.append(
            f"| {row['method']} | {headers[row['column']]} | {against} | {fmt_diff(row)} | {verdict} |"
        )
    lines += ["", "## Where topology alignment does not win", ""]
    lines += plain_verdicts(comps, headers)
    if missing:
        lines += ["", "## Missing modalities: mean Dice per modality subset kept at test time", ""]
        subsets = list(next(iter(missing.values())))
        lines += ["| method | " + " | ".join(subsets) + " |", "|---" * (len(subsets) + 1) + "|"]
        for method in methods:
            if method in missing:
                cells = [fmt_ci(summarize(missing[method].get(s, {}))) for s in subsets]
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if low:
        fractions = sorted({f for curve in low.values() for f in curve})
        lines += ["", "## Low labels: balanced accuracy per fraction of labelled subjects", ""]
        lines += [
            "| method | " + " | ".join(f"{f:.0%}" for f in fractions) + " |",
            "|---" * (len(fractions) + 1) + "|",
        ]
        for method in methods:
            if method in low:
                cells = [fmt_ci(summarize(low[method].get(f, {}))) for f in fractions]
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    lines += ["", "## Provenance", ""]
    machine = meta.get("machine", {})
    lines += [
        f"- command: `{meta.get('command', 'unknown')}`",
        f"- lightly-topo {meta.get('version', '?')}, commit `{meta.get('commit', 'unknown')}`",
        f"- date (UTC): {meta.get('date', '?')}; wall time: {meta.get('wall_s', math.nan):.0f} s"
        f" ({meta.get('records_reused', 0)} records reused from an earlier run)",
        f"- machine: {machine.get('platform', '?')}, {machine.get('cpu_count', '?')} CPUs, "
        f"torch {machine.get('torch', '?')}, device {meta.get('device', '?')} "
        f"({machine.get('cuda_device', 'cpu')})",
        f"- seeds: {', '.join(str(s) for s in seeds)}; data: {meta.get('data', '?')}; "
        f"pretraining data: {meta.get('pretrain_on', '?')}",
        "",
        "<details><summary>settings</summary>",
        "",
        "```json",
        json.dumps(preset, indent=1),
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def plain_verdicts(comps: Sequence[dict[str, Any]], headers: dict[str, str]) -> list[str]:
    """A sentence per topology method saying where it does not win."""
    lines: list[str] = []
    by_method: dict[str, list[dict[str, Any]]] = {}
    for row in comps:
        by_method.setdefault(row["method"], []).append(row)
    if not by_method:
        return ["No topology method was run, so no claim is made."]
    for method, rows in by_method.items():
        wins = [r for r in rows if r["verdict"] == "wins"]
        losses = [r for r in rows if r["verdict"] == "loses"]
        unclear = [r for r in rows if r["verdict"] not in ("wins", "loses")]

        def where(items: list[dict[str, Any]]) -> str:
            return "; ".join(f"{headers[r['column']]} vs {r['baseline']}" for r in items)

        if not wins:
            text = f"- **{method}** wins nowhere: no interval excludes 0 in its favour."
        else:
            text = f"- **{method}** wins only on: {where(wins)}."
        if losses:
            text += f" It is worse on: {where(losses)}."
        if unclear:
            text += f" No clear difference on {len(unclear)} of {len(rows)} comparisons."
        lines.append(text)
    lines.append(
        "- With few seeds the intervals are wide: *no clear difference* means these runs "
        "cannot tell, not that the methods are equal."
    )
    return lines


def _pretrain_wall(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    walls: dict[str, list[float]] = {}
    for r in records:
        if r.get("kind") == "pretrain" and r.get("status") == "ok" and _finite(r.get("wall_s")):
            walls.setdefault(r["method"], []).append(float(r["wall_s"]))
    return {m: sum(v) / len(v) for m, v in walls.items()}


def _failed(records: Sequence[dict[str, Any]], method: str) -> int:
    return sum(1 for r in records if r.get("method") == method and r.get("status") == "failed")


def csv_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run and metric: kind, task, method, seed, metric, key, value, times."""
    rows: list[dict[str, Any]] = []

    def add(record: dict[str, Any], metric: str, key: str, value: Any) -> None:
        rows.append(
            {
                "kind": record["kind"],
                "task": record.get("task", "pretrain"),
                "method": record["method"],
                "seed": record["seed"],
                "status": record.get("status", "ok"),
                "metric": metric,
                "key": key,
                "value": value if _finite(value) else "",
                "wall_s": round(record["wall_s"], 3) if _finite(record.get("wall_s")) else "",
                "cpu_s": round(record["cpu_s"], 3) if _finite(record.get("cpu_s")) else "",
            }
        )

    for record in records:
        if record.get("status") != "ok":
            add(record, "status", record.get("error", "failed")[:200], None)
            continue
        if record["kind"] == "pretrain":
            add(record, "final_loss", "", record.get("final_loss"))
            continue
        result = record["result"]
        if record["task"] == "segmentation":
            metrics = result["metrics"]
            for name in ("full", "mean", "mean_drop"):
                add(record, f"{metrics['metric']}_{name}", "", metrics.get(name))
            for row in metrics["subsets"]:
                add(record, metrics["metric"], row["name"], row["metric"])
        else:
            for point in result["curve"]:
                add(record, result["metric"], f"fraction={point['fraction']}", point["metric"])
    return rows


def write_csv(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    rows = csv_rows(records)
    buffer = io.StringIO()
    fields = [
        "kind",
        "task",
        "method",
        "seed",
        "status",
        "metric",
        "key",
        "value",
        "wall_s",
        "cpu_s",
    ]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return _atomic_text(path, buffer.getvalue())


def json_report(records: Sequence[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Meta, the summary table, paired comparisons, curves and every record."""
    methods = ordered_methods(records, meta.get("preset", {}).get("methods", ()))
    scores = extract_scores(records)
    missing, low = extract_curves(records)
    return {
        "meta": meta,
        "columns": [
            {"key": c.key, "header": c.header, "higher_is_better": c.higher_is_better}
            for c in COLUMNS
        ],
        "summary": summary_table(scores, methods),
        "comparisons": comparisons(scores, methods),
        "curves": {
            "missing_modality": {
                m: {s: summarize(v) for s, v in curve.items()} for m, curve in missing.items()
            },
            "low_label": {
                m: {str(f): summarize(v) for f, v in curve.items()} for m, curve in low.items()
            },
        },
        "records": list(records),
    }


def _atomic_text(path: Path, text: str) -> Path:
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_report(out: Path, records: Sequence[dict[str, Any]], meta: dict[str, Any]) -> list[Path]:
    """Write ``results.md``, ``results.csv``, ``results.json`` and the PNG plots into ``out``."""
    from lightly_topo.benchmark import plots
    from lightly_topo.eval.tasks import _jsonable

    out.mkdir(parents=True, exist_ok=True)
    pngs = plots.write_plots(out, records, meta)
    files = [
        _atomic_text(out / "results.md", markdown(records, meta, [p.name for p in pngs])),
        write_csv(out / "results.csv", records),
        _atomic_text(
            out / "results.json",
            json.dumps(_jsonable(json_report(records, meta)), indent=1, allow_nan=False),
        ),
    ]
    return files + pngs
