"""``benchmarks/device_check.sh --dry-run``: every step of the GPU check runs on this CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_device_check_dry_run_goes_through_every_step(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    proc = subprocess.run(
        ["bash", "benchmarks/device_check.sh", "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    steps = (tmp_path / "steps.txt").read_text().splitlines()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [line.split(":")[0] for line in steps] == ["== loss", "== methods", "== benchmark"]
    loss = (tmp_path / "loss_dry.md").read_text()
    assert "## Level sweep" in loss and "Growth exponents" in loss
    assert "13824 tokens (24^3" in loss  # the 1/4-stage share row of the encoder table
    assert "per volume x simclr" in (tmp_path / "methods_dry.md").read_text()
    assert (tmp_path / "benchmark_smoke" / "results.json").is_file()
