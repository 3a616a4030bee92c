"""``lightly-topo info``: versions of the stack and the devices seen."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
from typing import Any

from lightly_topo._version import __version__

_PACKAGES = (
    "torch",
    "lightly",
    "monai",
    "torchio",
    "timm",
    "pytorch-lightning",
    "numpy",
    "nibabel",
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info", help="print the versions of torch, lightly, monai, torchio, timm and the devices"
    )
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks on error")
    parser.set_defaults(func=run)


def package_versions() -> dict[str, str]:
    """Installed version of each package of the stack (``"not installed"`` where absent)."""
    versions = {"lightly-topo": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def devices() -> list[str]:
    """A line per compute device torch can use."""
    import torch

    found = [
        f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    ]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            found.append(f"cuda:{index}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps: Apple Metal")
    return found


def run(args: argparse.Namespace) -> int:
    print(f"python: {platform.python_version()} ({platform.platform()})")
    for name, version in package_versions().items():
        print(f"{name}: {version}")
    print("devices:")
    for line in devices():
        print(f"  {line}")
    return 0
