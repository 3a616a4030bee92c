"""Baseline-comparison benchmark, the same as ``lightly-topo benchmark``.

Usage::

    python benchmarks/run_benchmark.py --preset quick --out benchmarks/results/benchmark_quick
    python benchmarks/run_benchmark.py --preset full --out benchmarks/results/benchmark_full --device cuda

Writes OUT/results.md (Markdown table, mean ± 95% CI, paired comparisons), OUT/results.csv,
OUT/results.json and OUT/*.png, recording command, settings, version, commit, seeds,
machine and wall time. Re-running with the same --out resumes.
"""

from __future__ import annotations

import argparse
import sys

from lightly_topo.cli import benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_benchmark.py", description=__doc__.split("\n")[0])
    subparsers = parser.add_subparsers(dest="command")
    benchmark.add_parser(subparsers)
    args = parser.parse_args(["benchmark", *(sys.argv[1:] if argv is None else argv)])
    try:
        result = args.func(args)
    except ValueError as error:
        if args.traceback:
            raise
        print(f"run_benchmark.py: error: {error}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
