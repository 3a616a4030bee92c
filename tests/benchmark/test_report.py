"""Report, confidence-interval and paired-comparison logic on hand-made records."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from lightly_topo.benchmark import report
from lightly_topo.benchmark.report import COLUMNS, Column, comparisons, extract_scores, paired
from lightly_topo.eval.stats import t_ppf


def seg_record(method: str, seed: int, full: float, subsets: dict[str, float]) -> dict[str, Any]:
    rows = [
        {"name": name, "modalities": name.split("+"), "metric": v} for name, v in subsets.items()
    ]
    values = list(subsets.values())
    return {
        "kind": "downstream",
        "task": "segmentation",
        "method": method,
        "seed": seed,
        "status": "ok",
        "wall_s": 1.0,
        "cpu_s": 1.0,
        "result": {
            "metrics": {
                "metric": "mean_dice",
                "full": full,
                "mean": sum(values) / len(values),
                "mean_drop": sum(full - v for v in values[1:]) / (len(values) - 1),
                "subsets": rows,
            }
        },
    }


def cls_record(method: str, seed: int, curve: dict[float, float | None]) -> dict[str, Any]:
    return {
        "kind": "downstream",
        "task": "classification",
        "method": method,
        "seed": seed,
        "status": "ok",
        "wall_s": 2.0,
        "cpu_s": 2.0,
        "result": {
            "metric": "balanced_accuracy",
            "curve": [{"fraction": f, "n_labelled": 4, "metric": v} for f, v in curve.items()],
        },
    }


def make_records() -> list[dict[str, Any]]:
    """scratch < simclr < taco on Dice at every seed (taco clearly better); classification:
    taco equals byol +- noise; mae failed in pretraining for seed 2."""
    records: list[dict[str, Any]] = []
    dice = {
        "scratch": [0.50, 0.52, 0.51],
        "simclr": [0.60, 0.61, 0.63],
        "byol": [0.55, 0.58, 0.56],
        "taco": [0.70, 0.73, 0.71],
    }
    acc = {
        "scratch": [0.5, 0.6, 0.55],
        "simclr": [0.6, 0.7, 0.65],
        "byol": [0.70, 0.80, 0.75],
        "taco": [0.72, 0.76, 0.77],
    }
    for method in dice:
        for seed in range(3):
            full = dice[method][seed]
            records.append(
                seg_record(method, seed, full, {"t1+t2": full, "t1": full - 0.1, "t2": full - 0.2})
            )
            records.append(
                cls_record(method, seed, {0.25: acc[method][seed] - 0.1, 1.0: acc[method][seed]})
            )
            if method != "scratch":
                records.append(
                    {
                        "kind": "pretrain",
                        "method": method,
                        "seed": seed,
                        "status": "ok",
                        "wall_s": 3.0,
                    }
                )
    records.append(
        {"kind": "pretrain", "method": "mae", "seed": 2, "status": "failed", "error": "nan"}
    )
    return records


def meta() -> dict[str, Any]:
    return {
        "preset": {
            "name": "unit",
            "methods": ["scratch", "simclr", "byol", "mae", "taco"],
            "cls_mode": "linear",
            "cls_label": "lesion_type",
            "low_label_fractions": [0.25, 1.0],
        },
        "seeds": [0, 1, 2],
        "design": "hand-made records",
        "command": "pytest",
        "version": "0",
        "commit": "unknown",
        "machine": {"platform": "test", "cpu_count": 2, "torch": "x"},
        "date": "today",
        "wall_s": 1.0,
    }


def test_extract_scores_reads_every_column() -> None:
    scores = extract_scores(make_records())
    assert scores["seg_dice"]["taco"] == {0: 0.70, 1: 0.73, 2: 0.71}
    assert scores["mm_mean"]["scratch"][0] == pytest.approx((0.5 + 0.4 + 0.3) / 3)
    assert scores["mm_drop"]["simclr"][1] == pytest.approx(0.15)
    assert scores["cls_bacc"]["byol"] == {0: 0.70, 1: 0.80, 2: 0.75}
    assert scores["cls_low"]["byol"][0] == pytest.approx(0.60)
    assert "mae" not in scores["seg_dice"]


def test_extract_scores_drops_nan_and_none() -> None:
    records = [
        cls_record("simclr", 0, {0.5: None, 1.0: float("nan")}),
        cls_record("simclr", 1, {0.5: 0.4, 1.0: 0.6}),
    ]
    scores = extract_scores(records)
    assert scores["cls_bacc"]["simclr"] == {1: 0.6}
    assert scores["cls_low"]["simclr"] == {1: 0.4}


def test_summarize_matches_student_t() -> None:
    summary = report.summarize({0: 0.5, 1: 0.6, 2: 0.7})
    assert summary["mean"] == pytest.approx(0.6)
    assert summary["half_width"] == pytest.approx(t_ppf(0.975, 2) * 0.1 / math.sqrt(3))
    one = report.summarize({4: 0.5})
    assert one["n"] == 1 and math.isnan(one["half_width"])
    assert report.fmt_ci(one) == "0.500 (n=1)"
    assert report.fmt_ci(report.summarize({})) == "n/a"


def test_paired_verdicts() -> None:
    higher = Column("x", "x")
    lower = Column("y", "y", higher_is_better=False)
    scores = {"a": {0: 0.7, 1: 0.72, 2: 0.71}, "b": {0: 0.5, 1: 0.53, 2: 0.51}}
    assert paired(scores, "a", "b", higher)["verdict"] == "wins"
    assert paired(scores, "b", "a", higher)["verdict"] == "loses"
    assert paired(scores, "a", "b", lower)["verdict"] == "loses"
    noisy = {"a": {0: 0.7, 1: 0.5, 2: 0.62}, "b": {0: 0.6, 1: 0.6, 2: 0.6}}
    row = paired(noisy, "a", "b", higher)
    assert row["verdict"] == "no clear difference" and row["low"] < 0 < row["high"]
    two = {"a": {0: 0.9, 1: 0.95}, "b": {0: 0.1, 1: 0.1}}
    assert paired(two, "a", "b", higher)["verdict"] == "too few seeds"
    flat = {"a": {0: 0.6, 1: 0.7, 2: 0.8}, "b": {0: 0.5, 1: 0.6, 2: 0.7}}
    assert paired(flat, "a", "b", higher)["verdict"] == "cannot tell (no spread)"
    unpaired = {"a": {0: 0.6, 1: 0.7}, "b": {2: 0.5, 3: 0.6}}
    assert paired(unpaired, "a", "b", higher)["n"] == 0


def test_comparisons_use_scratch_and_best_instance_baseline() -> None:
    rows = comparisons(extract_scores(make_records()), ["scratch", "simclr", "byol", "mae", "taco"])
    assert {r["method"] for r in rows} == {"taco"}
    by = {(r["column"], r["against"]): r for r in rows}
    assert by[("seg_dice", "best instance-level baseline")]["baseline"] == "simclr"
    assert by[("cls_bacc", "best instance-level baseline")]["baseline"] == "byol"
    assert by[("seg_dice", "scratch")]["verdict"] == "wins"
    assert by[("seg_dice", "best instance-level baseline")]["mean"] == pytest.approx(0.1)
    assert by[("cls_bacc", "best instance-level baseline")]["verdict"] == "no clear difference"
    # Dice lost to missing modalities is identical for all methods here: no claim either way.
    assert by[("mm_drop", "scratch")]["verdict"] == "cannot tell (no spread)"
    assert len(rows) == 2 * len(COLUMNS)


def test_markdown_marks_best_and_says_where_topology_does_not_win() -> None:
    text = report.markdown(make_records(), meta(), ["tasks.png"])
    table = next(line for line in text.splitlines() if line.startswith("| taco |"))
    assert "**0.713 ±" in table  # best segmentation Dice
    byol = next(line for line in text.splitlines() if line.startswith("| byol |"))
    assert "**0.750 ±" in byol  # best classification
    assert "## Where topology alignment does not win" in text
    assert "**taco** wins only on" in text
    assert "Classification bal. acc. vs byol" not in text.split("wins only on:")[1].split(".")[0]
    mae = next(line for line in text.splitlines() if line.startswith("| mae |"))
    assert "n/a" in mae and "1 failed" in mae
    assert "![tasks](tasks.png)" in text
    assert "commit `unknown`" in text


def test_write_report_files(tmp_path: Path) -> None:
    files = report.write_report(tmp_path, make_records(), meta())
    names = sorted(p.name for p in files)
    assert names == sorted(
        [
            "results.md",
            "results.csv",
            "results.json",
            "tasks.png",
            "missing_modality.png",
            "low_label.png",
            "paired.png",
        ]
    )
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["summary"]["seg_dice"]["taco"]["mean"] == pytest.approx(0.7133333)
    assert data["summary"]["seg_dice"]["mae"]["mean"] is None
    assert data["curves"]["missing_modality"]["simclr"]["t1"]["n"] == 3
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["method"] == "mae"
    subset_rows = [r for r in rows if r["task"] == "segmentation" and r["key"] == "t2"]
    assert len(subset_rows) == 12
    assert not list(tmp_path.glob(".*.tmp"))
