"""Every runnable example of the docs runs, shrunk to seconds (``--tiny``), in a subprocess;
the near-diffs of Lightly's scripts (they print Lightly's ``epoch: NN, loss: X`` lines) must
lower their loss."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO_ROOT / "docs" / "examples").glob("*.py"))
REQUIRED = {
    "simclr_topo_pytorch.py",
    "byol_topo_pytorch.py",
    "byol_topo_lightning.py",
    "mae_topo_pytorch.py",
    "taco_brats_folder.py",
    "finetune_monai_swinunetr.py",
}
#: Generous limit for a shared CI machine; a tiny run takes seconds on an idle 2-core CPU.
TIMEOUT_S = 240
#: Lightly's per-epoch print, kept verbatim by the near-diff scripts.
EPOCH_LINE = re.compile(r"^epoch: (\d+), loss: (\S+)$")
#: The scripts that are Lightly's example scripts with lines changed.
LIGHTLY_DIFFS = {"simclr_topo_pytorch.py", "byol_topo_pytorch.py", "mae_topo_pytorch.py"}


def epoch_losses(stdout: str) -> list[float]:
    """The per-epoch losses a near-diff script printed."""
    return [float(m.group(2)) for line in stdout.splitlines() if (m := EPOCH_LINE.match(line))]


def loss_went_down(losses: list[float]) -> bool:
    """Mean of the last third of the epochs below the mean of the first third."""
    third = max(1, len(losses) // 3)
    first, last = losses[:third], losses[-third:]
    return all(math.isfinite(v) for v in losses) and sum(last) / third < sum(first) / third


def test_loss_went_down_can_fail() -> None:
    assert loss_went_down([3.0, 2.9, 2.0, 1.5, 1.0, 1.2])
    assert not loss_went_down([1.0, 1.1, 1.2, 1.3, 1.2, 1.4])
    assert not loss_went_down([3.0, 2.0, float("nan")])
    assert epoch_losses("Starting Training\nepoch: 00, loss: 8.5\nepoch: 01, loss: 7.25\n") == [
        8.5,
        7.25,
    ]


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
    if script.name in LIGHTLY_DIFFS:
        losses = epoch_losses(result.stdout)
        assert len(losses) >= 6, output
        assert loss_went_down(losses), output
    else:
        assert result.stdout.strip().splitlines()[-1] == "done", output
