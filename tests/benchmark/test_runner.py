"""The smoke preset end to end, resumption and bad input of the benchmark runner."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from lightly_topo.benchmark import BenchmarkError, get_preset, run_benchmark
from lightly_topo.benchmark.presets import PRESETS
from lightly_topo.benchmark.runner import record_name

OUTPUTS = (
    "results.md",
    "results.csv",
    "results.json",
    "tasks.png",
    "missing_modality.png",
    "low_label.png",
    "paired.png",
)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("smoke")
    threads = torch.get_num_threads()
    result = run_benchmark(get_preset("smoke"), out, command="pytest smoke")
    assert torch.get_num_threads() == threads  # the run restores the thread count
    return out, result


def test_smoke_writes_every_output(smoke: tuple[Path, Any]) -> None:
    out, result = smoke
    for name in OUTPUTS:
        assert (out / name).is_file(), name
        assert (out / name) in result.files
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    preset = PRESETS["smoke"]
    runs = sorted(p.name for p in (out / "runs").glob("*.json"))
    expected = {
        record_name(kind, method, seed)
        for method in preset.methods
        for seed in preset.seeds
        for kind in ("segmentation", "classification", "pretrain")
        if not (kind == "pretrain" and method == "scratch")
    }
    assert set(runs) == expected
    assert not list((out / "runs").glob(".*tmp"))


def test_smoke_records_provenance(smoke: tuple[Path, Any]) -> None:
    out, _ = smoke
    data = json.loads((out / "results.json").read_text())
    meta = data["meta"]
    for key in ("command", "version", "commit", "seeds", "machine", "wall_s", "preset", "date"):
        assert meta[key] not in (None, ""), key
    assert meta["command"] == "pytest smoke"
    assert meta["seeds"] == [0, 1]
    assert meta["preset"]["name"] == "smoke"
    assert meta["machine"]["cpu_count"] >= 1
    text = (out / "results.md").read_text()
    for line in ("command: `pytest smoke`", "commit `", "seeds: 0, 1", "wall time:"):
        assert line in text
    for method in PRESETS["smoke"].methods:
        assert f"| {method} |" in text
    assert "## Where topology alignment does not win" in text


def _check_range(value: Any, low: float, high: float, where: str) -> None:
    assert isinstance(value, float | int) and math.isfinite(value), where
    assert low - 1e-9 <= value <= high + 1e-9, (where, value)


def test_smoke_numbers_are_finite_and_in_range(smoke: tuple[Path, Any]) -> None:
    out, _ = smoke
    data = json.loads((out / "results.json").read_text())
    ranges = {
        "seg_dice": (0, 1),
        "mm_mean": (0, 1),
        "mm_drop": (-1, 1),
        "cls_bacc": (0, 1),
        "cls_low": (0, 1),
    }
    for column, (low, high) in ranges.items():
        for method in PRESETS["smoke"].methods:
            summary = data["summary"][column][method]
            assert summary["n"] == 2, (column, method)
            _check_range(summary["mean"], low, high, f"{column}/{method}")
            assert summary["half_width"] >= 0
            for value in summary["values"].values():
                _check_range(value, low, high, f"{column}/{method}")
    for record in data["records"]:
        assert record["status"] == "ok", record
        if record["kind"] == "pretrain":
            assert record["steps"] == PRESETS["smoke"].pretrain_steps
            assert all(math.isfinite(loss) for loss in record["losses"])
            assert (out / record["encoder"]).is_file()
        else:
            _check_range(record["wall_s"], 0, 600, "wall_s")
    for row in data["comparisons"]:
        assert row["verdict"] == "too few seeds"  # smoke has 2 seeds: no claim
        assert row["method"] in ("taco", "simclr+topo")


def test_rerun_resumes_and_recomputes_only_what_is_missing(smoke: tuple[Path, Any]) -> None:
    out, first = smoke
    missing = out / "runs" / record_name("classification", "taco", 1)
    kept = out / "runs" / record_name("segmentation", "taco", 1)
    missing.unlink()
    before = kept.stat().st_mtime_ns
    result = run_benchmark(get_preset("smoke"), out, command="pytest resume")
    assert result.reused == len(first.records) - 1
    assert missing.is_file() and kept.stat().st_mtime_ns == before
    assert json.loads((out / "results.json").read_text())["meta"]["records_reused"] == result.reused


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_benchmark(get_preset("smoke"), tmp_path / "out", data=tmp_path / "nowhere")
    with pytest.raises(BenchmarkError, match="needs --data"):
        run_benchmark(get_preset("smoke"), tmp_path / "out", pretrain_on="train-subjects")
    with pytest.raises(BenchmarkError, match="pretrain_on must be"):
        run_benchmark(get_preset("smoke"), tmp_path / "out", pretrain_on="everything")


def test_dataset_without_label_maps_is_refused(tmp_path: Path) -> None:
    from lightly_topo.data.synthetic import SyntheticBrains

    root = SyntheticBrains(4, size=16, modalities=("t1", "flair"), lesions=False).save(
        tmp_path / "nolabels"
    )
    with pytest.raises(BenchmarkError, match="segmentation needs a label map"):
        run_benchmark(get_preset("smoke"), tmp_path / "out", data=root)


def test_time_budget_stops_new_runs_and_still_reports(tmp_path: Path) -> None:
    preset = get_preset("smoke", time_budget_s=0.0, methods=("scratch", "taco"))
    result = run_benchmark(preset, tmp_path, command="pytest budget")
    assert result.records == []
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["meta"]["runs_not_done"] == 2 * (2 + 3)
    assert "**Incomplete**" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "tasks.png").is_file()


def test_kfold_split_tests_every_subject_once() -> None:
    import dataclasses

    from lightly_topo.benchmark.runner import (
        design_statement,
        downstream_dataset,
        seed_split,
        settings_fingerprint,
        subject_ids,
    )

    preset = dataclasses.replace(
        get_preset("smoke"), split="kfold", seeds=(3, 5, 7), downstream_subjects=12
    )
    dataset = downstream_dataset(preset, None)
    every = set(subject_ids(dataset))
    folds = [seed_split(dataset, preset, seed) for seed in preset.seeds]
    tested = [set(f.test) for f in folds]
    assert set().union(*tested) == every
    assert sum(len(t) for t in tested) == len(every)  # disjoint test sides
    for fold, test in zip(folds, tested):
        assert set(fold.train) == every - test
    assert "3-fold cross-validation" in design_statement(preset, None, "synthetic")
    # the seeds are the folds: other seeds must not reuse the records
    other = dataclasses.replace(preset, seeds=(3, 5))
    assert settings_fingerprint(preset, None, "synthetic") != settings_fingerprint(
        other, None, "synthetic"
    )
    random_split = dataclasses.replace(preset, split="random")
    assert settings_fingerprint(random_split, None, "synthetic") == settings_fingerprint(
        dataclasses.replace(random_split, seeds=(3, 5)), None, "synthetic"
    )
