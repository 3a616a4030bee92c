"""Import time of the user-facing subpackages, each in a fresh interpreter.

Target (issue: a Lightly user's path): ``import lightly_topo.models`` and
``import lightly_topo.transforms`` under 3 s on the 2-core development machine. ``torch``
alone is timed too: it is the floor every subpackage pays.

Usage::

    python benchmarks/bench_imports.py --out benchmarks/results/imports_cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MODULES = (
    "torch",
    "lightly_topo",
    "lightly_topo.models",
    "lightly_topo.transforms",
    "lightly_topo.loss",
    "lightly_topo.data",
)

TARGET_S = 3.0


def time_import(module: str, repeats: int) -> list[float]:
    """Wall seconds of ``python -c "import module"``, ``repeats`` times (after one warm-up
    run that fills the OS file cache)."""
    command = [sys.executable, "-c", f"import {module}"]
    subprocess.run(command, check=True, cwd=REPO)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO)
        times.append(time.perf_counter() - start)
    return times


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "lightly_topo"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="Markdown file (+ .json)")
    args = parser.parse_args()
    rows = []
    for module in MODULES:
        times = time_import(module, args.repeats)
        rows.append(
            {
                "module": module,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "max_s": max(times),
                "target_s": TARGET_S if module.startswith("lightly_topo.") else None,
            }
        )
        print(rows[-1], flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    info = {
        "platform": platform.platform(),
        "cpu_count": str(os.cpu_count()),
        "python": platform.python_version(),
        "load_average_1_5_15": " ".join(f"{v:.2f}" for v in load),
    }
    lines = [
        "# Import time (fresh interpreter per import)",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}  ",
        f"Commit: `{commit()}`  ",
        f"Command: `python {' '.join(sys.argv)}`  ",
        "Machine: " + ", ".join(f"{k}: {v}" for k, v in info.items()),
        "",
        f'Wall seconds of `python -c "import MODULE"`, median of {args.repeats} runs after a '
        f"warm-up; the target for the user-facing subpackages is under {TARGET_S:.0f} s.",
        "",
        "| module | median s | min s | max s | target |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        target = (
            ""
            if r["target_s"] is None
            else (
                f"< {r['target_s']:.0f} s: {'met' if r['median_s'] < r['target_s'] else 'NOT met'}"
            )
        )
        lines.append(
            f"| `{r['module']}` | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | "
            f"{target} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(
            json.dumps({"machine": info, "commit": commit(), "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
