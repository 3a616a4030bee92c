"""The smoke preset end to end: outputs, reproducibility, resumption, controls and budget."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from lightly_topo.benchmark import get_preset, run_benchmark
from lightly_topo.benchmark.budget import BudgetError
from lightly_topo.benchmark.presets import INTENSITY, PRESETS
from lightly_topo.benchmark.records import record_name

OUTPUTS = ("results.md", "results.csv", "results.json", "headline.png", "subsets.png")

#: The parts of results.json that hold measured values (meta holds dates and wall times).
MEASURED = ("table", "comparisons", "instrument_check", "chance")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("smoke")
    threads = torch.get_num_threads()
    result = run_benchmark(get_preset("smoke"), out, command="pytest smoke")
    assert torch.get_num_threads() == threads  # the run restores the thread count
    return out, result


def _measured(out: Path) -> dict[str, Any]:
    data = json.loads((out / "results.json").read_text())
    return {key: data[key] for key in MEASURED}


def test_smoke_writes_every_output(smoke: tuple[Path, Any]) -> None:
    out, result = smoke
    for name in OUTPUTS:
        assert (out / name).is_file(), name
        assert (out / name) in result.files
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    preset = PRESETS["smoke"]
    runs = {p.name for p in (out / "runs").glob("*.json")}
    expected = {record_name("probes", INTENSITY, s) for s in preset.seeds}
    for method in preset.methods:
        for seed in preset.seeds:
            expected.add(record_name("probes", method, seed))
            if method != "scratch":
                expected.add(record_name("pretrain", method, seed))
    assert runs == expected
    assert not list((out / "runs").glob(".*tmp"))


def test_smoke_report_opens_with_the_instrument_check(smoke: tuple[Path, Any]) -> None:
    out, result = smoke
    text = (out / "results.md").read_text()
    lines = text.splitlines()
    assert lines[2].startswith("**Instrument check: ")
    # the smoke budget cannot train a positive control: the run says it cannot rank
    assert not result.instrument_passed
    assert "This run cannot rank methods" in lines[2]
    assert "No verdict: the instrument check failed" in text
    data = json.loads((out / "results.json").read_text())
    assert data["instrument_check"]["passed"] is False
    meta = data["meta"]
    for key in ("command", "version", "commit", "seeds", "machine", "wall_s", "preset", "date"):
        assert meta[key] not in (None, ""), key
    assert f"commit `{meta['commit'][:12]}`" in text
    for method in (INTENSITY, *PRESETS["smoke"].methods):
        assert f"| {method}" in text


def test_smoke_numbers_are_in_range_with_intervals(smoke: tuple[Path, Any]) -> None:
    out, _ = smoke
    data = json.loads((out / "results.json").read_text())
    for column, methods in data["table"].items():
        for method, s in methods.items():
            if s["mean"] is None:
                continue
            if column != "lesion_fp_ml":
                assert -1e-9 <= s["mean"] <= 1 + 1e-9, (column, method)
            assert s["low"] <= s["mean"] + 1e-9 and s["mean"] <= s["high"] + 1e-9, (column, method)
    for record in json.loads((out / "results.json").read_text())["comparisons"]:
        assert record["method"] in ("taco", "simclr+topo")


def test_budget_is_equal_in_encoded_volumes(smoke: tuple[Path, Any]) -> None:
    out, _ = smoke
    preset = PRESETS["smoke"]
    for path in (out / "runs").glob("pretrain__*.json"):
        record = json.loads(path.read_text())
        assert record["status"] == "ok", record
        budget = preset.pretrain_volumes
        if record["method"] == "supervised":
            budget = preset.supervised_volumes or budget
        assert budget <= record["volumes"], path.name
        per_step = record["volumes"] // record["steps"]
        assert record["volumes"] - per_step < budget, path.name
        assert all(math.isfinite(v) for v in record["losses"])


def test_same_command_same_numbers(smoke: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = smoke
    run_benchmark(get_preset("smoke"), tmp_path, command="pytest smoke again")
    assert _measured(tmp_path) == _measured(out)


def test_rerun_resumes_and_recomputes_only_what_is_missing(smoke: tuple[Path, Any]) -> None:
    out, first = smoke
    missing = out / "runs" / record_name("probes", "taco", 1)
    kept = out / "runs" / record_name("pretrain", "taco", 1)
    before_numbers = _measured(out)
    missing.unlink()
    before = kept.stat().st_mtime_ns
    result = run_benchmark(get_preset("smoke"), out, command="pytest resume")
    assert result.reused == len(first.records) - 1
    assert missing.is_file() and kept.stat().st_mtime_ns == before
    assert _measured(out) == before_numbers


def test_budget_that_cannot_fit_is_refused_before_starting(tmp_path: Path) -> None:
    with pytest.raises(BudgetError, match=r"estimated \d+ s on this machine, over its budget"):
        run_benchmark(get_preset("smoke", time_budget_s=0.001), tmp_path)
    assert not (tmp_path / "runs").exists()


def test_a_folder_without_a_known_layout_is_a_clear_error(tmp_path: Path) -> None:
    from lightly_topo.benchmark import BenchmarkError

    with pytest.raises(BenchmarkError, match="cannot detect the layout"):
        run_benchmark(get_preset("smoke"), tmp_path / "out", data=tmp_path)
