"""Where a result comes from: command, package version, commit, machine, date.

>>> meta = provenance("lightly-topo benchmark --preset smoke")
>>> sorted(meta)[:4]
['command', 'commit', 'date', 'machine']
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any


def git_commit(path: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the repository holding ``path`` (default: this package),
    with ``-dirty`` where tracked files changed; ``"unknown"`` without git or a repository."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def machine() -> dict[str, Any]:
    """Platform, processor, CPU count, torch version and the compute device."""
    import torch

    device = "cpu"
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda_device": device,
    }


def provenance(command: str | None = None) -> dict[str, Any]:
    """Command, package version, commit, machine and UTC date of a run."""
    from lightly_topo._version import __version__

    return {
        "command": command if command is not None else shlex.join(sys.argv),
        "version": __version__,
        "commit": git_commit(),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
