"""``lightly-topo benchmark``: the one-command baseline comparison.

Pretrains every compared method and the controls on the same backbone and data, probes each
frozen encoder over several seeds, and writes ``OUT/results.md``, ``OUT/results.csv``,
``OUT/results.json`` and ``OUT/*.png`` (see :mod:`lightly_topo.benchmark`). Re-running with
the same ``--out`` resumes: finished runs (``OUT/runs/*.json``) are reused.

Exit status: 0 when the run finished and its instrument check passed;
:data:`EXIT_INSTRUMENT_FAILED` (3) when it finished but the positive control did not beat
scratch (the run cannot rank methods); 1 on an error (bad data, settings or budget).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from typing import Any

#: Exit status of a finished run whose instrument check failed.
EXIT_INSTRUMENT_FAILED = 3


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="compare simclr, byol, mae, xmodal-simclr, taco and simclr+topo with controls",
        description=(
            "Pretrain every compared method and the controls (scratch, supervised), probe "
            "each frozen encoder (parcellation, lesions, modality subsets, subject labels) "
            "over several seeds, and write results.md / .csv / .json and PNG plots into "
            "--out. The report opens with the instrument check; exit status 3 when it "
            "fails (the run cannot rank methods). Presets: smoke (about a minute on CPU), "
            "quick (at most 15 minutes on 2 CPU cores), standard (at most 90 minutes), full "
            "(one GPU). Re-running with the same --out resumes."
        ),
    )
    parser.add_argument("--preset", required=True, choices=("smoke", "quick", "standard", "full"))
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--data",
        default=None,
        help="real dataset folder for the downstream tasks (default: synthetic brains)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (at least 2)")
    parser.add_argument("--methods", nargs="+", help="methods compared (default: the preset's)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="compute device")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset field, e.g. --set pretrain_volumes=2880 (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks on error")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lightly_topo.benchmark import BenchmarkError, PresetError, get_preset, run_benchmark
    from lightly_topo.benchmark.budget import BudgetError
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
            command=command,
            progress=progress,
        )
    except (CheckpointError, BenchmarkError, BudgetError, PresetError) as error:
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
    if not result.instrument_passed:
        print(
            "instrument check FAILED: the positive control does not beat scratch on every "
            "headline column, so this run cannot rank methods (see the first lines of "
            "results.md)",
            file=sys.stderr,
        )
        return EXIT_INSTRUMENT_FAILED
    print("instrument check passed: the positive control beats scratch on every headline column")
    return 0
