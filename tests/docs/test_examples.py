"""Every runnable example of the docs runs, shrunk to seconds (``--tiny``), in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO_ROOT / "docs" / "examples").glob("*.py"))
REQUIRED = {
    "simclr_topo_pytorch.py",
    "byol_topo_lightning.py",
    "mae_topo_pytorch.py",
    "taco_brats_folder.py",
    "finetune_monai_swinunetr.py",
}
#: Generous limit for a shared CI machine; a tiny run takes seconds on an idle 2-core CPU.
TIMEOUT_S = 240


def test_required_examples_exist() -> None:
    assert REQUIRED <= {path.name for path in EXAMPLES}


@pytest.mark.parametrize("script", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs_tiny(script: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    env["LIGHTLY_TOPO_EXAMPLE_TINY"] = "1"
    env["TMPDIR"] = str(tmp_path)  # the examples' temporary folders land in tmp_path
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "2")
    result = subprocess.run(
        [sys.executable, str(script), "--tiny"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    output = f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, output
    assert result.stdout.strip().splitlines()[-1] == "done", output
