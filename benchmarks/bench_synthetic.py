"""Speed of the synthetic generator ``SyntheticBrains``: seconds per subject, one thread.

For each grid size, times ``dataset[i]`` (anatomy, deformation, lesions, 4 modalities, z-score)
over several subjects (indices cycle over every lesion class), with
``torch.set_num_threads(1)``:

* ``procedural``: the built-in anatomy model;
* ``synthseg``: anatomy from the real SynthSeg label maps in ``../shared/data`` (where present),
  with the maps already in memory; loading a map (once per map and process) is timed apart.

Usage::

    python benchmarks/bench_synthetic.py --out benchmarks/results/synthetic_cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightly_topo.data.synthetic import SyntheticBrains  # noqa: E402
from lightly_topo.data.synthetic.label_maps import list_label_maps, load_label_map  # noqa: E402

MODALITIES = ("t1", "t2", "pd", "flair")
DEFAULT_MAPS = REPO.parent / "shared" / "data" / "synthseg_training_label_maps"


def time_items(dataset: SyntheticBrains, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of each of ``dataset[1] ... dataset[repeats]``
    (after one warm-up item). On a shared machine the CPU time is the steadier figure."""
    dataset[0]
    wall, cpu = [], []
    for i in range(1, repeats + 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        item = dataset[i % len(dataset)]
        float(item["images"][MODALITIES[0]][0, 0, 0, 0])
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def machine() -> dict[str, str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "torch": torch.__version__,
        "device": "cpu (torch.set_num_threads(1))",
        "load_average_1_5_15": " ".join(f"{v:.2f}" for v in load),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96, 128])
    parser.add_argument("--repeats", type=int, default=6, help="subjects timed per size")
    parser.add_argument("--label-maps", type=Path, default=DEFAULT_MAPS)
    parser.add_argument("--maps-used", type=int, default=2, help="label maps to draw from")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file (+ .json)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    maps = None
    load_seconds = load_cpu_seconds = None
    if args.label_maps.is_dir():
        maps = list_label_maps(args.label_maps)[: args.maps_used]
        start, start_cpu = time.perf_counter(), time.process_time()
        for path in maps:
            load_label_map(path)
        load_seconds = (time.perf_counter() - start) / len(maps)
        load_cpu_seconds = (time.process_time() - start_cpu) / len(maps)
    for size in args.sizes:
        for anatomy in ("procedural", "synthseg"):
            if anatomy == "synthseg" and maps is None:
                continue
            dataset = SyntheticBrains(
                args.repeats + 1,
                size=size,
                modalities=MODALITIES,
                label_maps=maps if anatomy == "synthseg" else None,
            )
            wall, cpu = time_items(dataset, args.repeats)
            rows.append(
                {
                    "size": size,
                    "anatomy": anatomy,
                    "median_wall_s": statistics.median(wall),
                    "min_wall_s": min(wall),
                    "max_wall_s": max(wall),
                    "median_cpu_s": statistics.median(cpu),
                    "subjects": len(wall),
                }
            )
            print(rows[-1], flush=True)

    info = machine()
    command = "python " + " ".join(sys.argv)
    lines = [
        "# Synthetic generator speed (`SyntheticBrains`, CPU, one thread)",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}  ",
        f"Command: `{command}`  ",
        "Machine: " + ", ".join(f"{k}: {v}" for k, v in info.items()),
        "",
        f"Seconds per subject for `dataset[i]` ({len(MODALITIES)} modalities "
        f"{', '.join(MODALITIES)}, lesions on, z-scored), over {args.repeats} subjects per row "
        "after one warm-up subject.",
        "",
        "Wall: elapsed seconds (inflated when other processes share the cores: see the load "
        "average above); CPU: seconds of CPU used by this process (the cost on an idle core).",
        "",
        "| size | anatomy | median CPU s/subject | median wall s/subject | min wall | max wall |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']}^3 | {r['anatomy']} | {r['median_cpu_s']:.3f} | "
            f"{r['median_wall_s']:.3f} | {r['min_wall_s']:.3f} | {r['max_wall_s']:.3f} |"
        )
    if load_seconds is not None:
        lines += [
            "",
            f"Loading one SynthSeg label map (256^3, decode + map + crop; once per map and "
            f"process, then cached): {load_cpu_seconds:.2f} s CPU, {load_seconds:.2f} s wall "
            f"(mean over {len(maps or [])} maps).",
        ]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        payload = {
            "machine": info,
            "command": command,
            "rows": rows,
            "map_load_wall_s": load_seconds,
            "map_load_cpu_s": load_cpu_seconds,
        }
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
