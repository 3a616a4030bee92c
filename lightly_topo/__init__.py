"""lightly-topo: 3D multimodal medical-imaging self-supervised learning for Lightly.

An independent add-on to the Lightly library (not a product of Lightly AG). Importing the
top-level package is cheap: subpackages (``lightly_topo.data``, ``lightly_topo.loss``, ...)
are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from lightly_topo._version import __version__
from lightly_topo.errors import LightlyTopoError

__all__ = ["LightlyTopoError", "__version__", "load_pretrained", "save_pretrained"]

_SUBMODULES = {
    "checkpoint",
    "cli",
    "data",
    "errors",
    "eval",
    "loss",
    "methods",
    "models",
    "registry",
    "samplers",
    "transforms",
}


_CHECKPOINT_NAMES = {"save_pretrained", "load_pretrained"}


def __getattr__(name: str) -> Any:
    if name in _CHECKPOINT_NAMES:
        return getattr(importlib.import_module("lightly_topo.checkpoint"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"lightly_topo.{name}")
    raise AttributeError(f"module 'lightly_topo' has no attribute {name!r}")
