"""Entry point of the ``lightly-topo`` console script.

Each subcommand lives in its own module of :mod:`lightly_topo.cli` and exposes
``add_parser(subparsers)``, which registers its arguments and sets ``func`` to the function
that runs it. Heavy imports happen inside those functions, so ``lightly-topo --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lightly_topo._version import __version__
from lightly_topo.cli import (
    benchmark,
    evaluate,
    finetune,
    info,
    list_cmd,
    pretrain,
    summary,
)

_COMMANDS = (list_cmd, pretrain, benchmark, finetune, evaluate, summary, info)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lightly-topo`` with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="lightly-topo",
        description=(
            "3D multimodal medical-imaging self-supervised learning for Lightly, with TACO "
            "topological alignment. An independent add-on, not a product of Lightly AG."
        ),
    )
    parser.add_argument("--version", action="version", version=f"lightly-topo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        from lightly_topo.data.errors import DataError

        if isinstance(error, DataError | FileNotFoundError | ValueError) and not getattr(
            args, "traceback", False
        ):
            print(f"lightly-topo {args.command}: error: {error}", file=sys.stderr)
            return 1
        raise
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
