"""``lightly-topo benchmark`` and ``benchmarks/run_benchmark.py``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from lightly_topo.cli import benchmark, evaluate, finetune
from lightly_topo.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the commands of this helper where cli/main.py does not list them yet."""
    extra = tuple(c for c in (benchmark, finetune, evaluate) if c not in cli_main._COMMANDS)
    monkeypatch.setattr(cli_main, "_COMMANDS", (*cli_main._COMMANDS, *extra))


def test_benchmark_cli_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    argv = ["benchmark", "--preset", "smoke", "--out", str(out), "--methods", "scratch", "taco"]
    # without the positive control the instrument check cannot pass: its own exit status
    assert cli_main.main(argv) == benchmark.EXIT_INSTRUMENT_FAILED
    captured = capsys.readouterr()
    assert "pretrain  taco" in captured.out and "done in" in captured.out
    assert "instrument check FAILED" in captured.err
    for name in ("results.md", "results.csv", "results.json", "headline.png", "subsets.png"):
        assert (out / name).is_file()
    meta = json.loads((out / "results.json").read_text())["meta"]
    assert meta["preset"]["methods"] == ["scratch", "taco"]
    assert meta["command"].startswith("lightly-topo ")
    # same command again: everything is reused
    assert cli_main.main([*argv, "--quiet"]) == benchmark.EXIT_INSTRUMENT_FAILED
    assert "(8 runs reused)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "pretrain_stepz=3"], "unknown preset fields ['pretrain_stepz']"),
        (["--seeds", "0"], "at least 2 distinct"),
        (["--data", "/nonexistent/folder"], "/nonexistent/folder: no such file or folder"),
        (["--methods", "scratch", "simsiam"], "unknown methods ['simsiam']"),
        (["--set", "time_budget_s=0.001"], "over its budget"),
    ],
)
def test_benchmark_cli_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = cli_main.main(["benchmark", "--preset", "smoke", "--out", str(tmp_path), *argv])
    assert code == 1
    assert message in capsys.readouterr().err


def test_benchmarks_script_parses_the_same_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "run_benchmark", REPO / "benchmarks" / "run_benchmark.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--preset", "smoke", "--out", str(tmp_path), "--set", "seg_steps=1"])
    assert code == 1
    assert "seg_steps" in capsys.readouterr().err
