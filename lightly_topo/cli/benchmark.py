"""``lightly-topo benchmark``: the one-command baseline comparison.

Pretrains every compared method on the same backbone and data, runs the same downstream
protocol for each over several seeds, and writes ``OUT/results.md``, ``OUT/results.csv``,
``OUT/results.json`` and ``OUT/*.png`` (see :mod:`lightly_topo.benchmark`). Re-running with
the same ``--out`` resumes: finished runs (``OUT/runs/*.json``) are reused.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="compare scratch, simclr, byol, mae, xmodal-simclr, taco and simclr+topo end to end",
        description=(
            "Pretrain every compared method, run segmentation (with the missing-modality "
            "sweep) and classification (with the low-label curve) for each, over several "
            "seeds, and write results.md / .csv / .json and PNG plots into --out. Presets: "
            "smoke (under 2 minutes on CPU), quick (about 10 minutes on 2 CPU cores), full "
            "(one GPU, about 10 minutes). Re-running with the same --out resumes."
        ),
    )
    parser.add_argument("--preset", required=True, choices=("smoke", "quick", "full"))
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--data",
        default=None,
        help="real dataset folder for the downstream tasks (default: synthetic brains)",
    )
    parser.add_argument(
        "--pretrain-on",
        default="auto",
        choices=("auto", "synthetic", "train-subjects"),
        help=(
            "pretraining subjects: separately generated synthetic brains, or (real --data "
            "only) each seed's training subjects; auto: train-subjects with --data"
        ),
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (at least 2)")
    parser.add_argument("--methods", nargs="+", help="methods compared (default: the preset's)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="compute device")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset field, e.g. --set pretrain_steps=50 (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks on error")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lightly_topo.benchmark import get_preset, run_benchmark
    from lightly_topo.benchmark.presets import parse_override
    from lightly_topo.checkpoint import CheckpointError

    overrides: dict[str, Any] = dict(parse_override(text) for text in args.set)
    if args.seeds:
        overrides["seeds"] = tuple(args.seeds)
    if args.methods:
        overrides["methods"] = tuple(args.methods)
    if args.device:
        overrides["device"] = args.device
    preset = get_preset(args.preset, **overrides)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    bench_logger = logging.getLogger("lightly_topo.benchmark")
    bench_logger.addHandler(handler)
    bench_logger.setLevel(logging.WARNING)
    command = "lightly-topo " + shlex.join(sys.argv[1:]) if sys.argv else "lightly-topo benchmark"
    progress = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    try:
        result = run_benchmark(
            preset,
            args.out,
            data=args.data,
            pretrain_on=args.pretrain_on,
            command=command,
            progress=progress,
        )
    except CheckpointError as error:
        if args.traceback:
            raise
        print(f"lightly-topo benchmark: error: {error}", file=sys.stderr)
        return 1
    finally:
        bench_logger.removeHandler(handler)
    print(
        f"done in {result.wall_s:.0f} s ({result.reused} runs reused): "
        + ", ".join(str(p) for p in result.files)
    )
    return 0
