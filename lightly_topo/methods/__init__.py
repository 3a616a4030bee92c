"""Pretraining methods as Lightning modules, their configuration and training entry point.

Methods (registered in :mod:`lightly_topo.registry`): :class:`SimCLR3D` (``simclr``),
:class:`BYOL3D` (``byol``), :class:`MAE3D` (``mae``), :class:`TACO` (``taco``),
:class:`SimCLRTopo3D` (``simclr+topo``), :class:`BYOLTopo3D` (``byol+topo``),
:class:`MAETopo3D` (``mae+topo``) and :class:`CrossModalSimCLR3D` (``xmodal-simclr``).
:func:`~lightly_topo.methods.train.pretrain` builds data, model and Trainer from a
:class:`PretrainConfig` and runs it.
"""

from __future__ import annotations

from lightly_topo.methods.base import PretrainMethod
from lightly_topo.methods.byol import BYOL3D
from lightly_topo.methods.callbacks import (
    AtomicCheckpointIO,
    CollapseMonitor,
    NonFiniteGuard,
    NonFiniteLossError,
    OnlineLinearProbe,
    ThroughputMonitor,
)
from lightly_topo.methods.combos import BYOLTopo3D, MAETopo3D, SimCLRTopo3D
from lightly_topo.methods.config import (
    METHOD_DEFAULTS,
    ConfigError,
    PretrainConfig,
    build_config,
    load_yaml,
)
from lightly_topo.methods.mae import MAE3D
from lightly_topo.methods.simclr import SimCLR3D
from lightly_topo.methods.taco import TACO
from lightly_topo.methods.xmodal_simclr import CrossModalSimCLR3D

__all__ = [
    "BYOL3D",
    "MAE3D",
    "METHOD_DEFAULTS",
    "TACO",
    "AtomicCheckpointIO",
    "BYOLTopo3D",
    "CollapseMonitor",
    "ConfigError",
    "CrossModalSimCLR3D",
    "MAETopo3D",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "OnlineLinearProbe",
    "PretrainConfig",
    "PretrainMethod",
    "SimCLR3D",
    "SimCLRTopo3D",
    "ThroughputMonitor",
    "build_config",
    "load_yaml",
]
