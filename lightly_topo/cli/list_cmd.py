"""``lightly-topo list``: every registered method, loss, backbone and view transform."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "list", help="list the registered methods, losses, backbones and view transforms"
    )
    parser.add_argument(
        "kind", nargs="?", help="only this kind: method, loss, backbone or transform"
    )
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks on error")
    parser.set_defaults(func=run)


_PLURAL = {"loss": "losses"}


def format_entries(entries: list[tuple[str, str, str]]) -> list[str]:
    """Lines ``kind  name  description``, grouped by kind, names aligned."""
    width = max((len(name) for _, name, _ in entries), default=0)
    lines: list[str] = []
    current = None
    for kind, name, description in entries:
        if kind != current:
            if current is not None:
                lines.append("")
            lines.append(f"{_PLURAL.get(kind, kind + 's')}:")
            current = kind
        lines.append(f"  {name.ljust(width)}  {description}")
    return lines


def run(args: argparse.Namespace) -> int:
    from lightly_topo import registry

    try:
        entries = registry.list(args.kind)
    except LookupError as error:
        raise ValueError(str(error)) from error
    for line in format_entries(entries):
        print(line)
    return 0
