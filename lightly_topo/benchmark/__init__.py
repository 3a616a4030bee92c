"""The baseline-comparison benchmark: does topological alignment beat (or add to) SimCLR,
BYOL and MAE on my data and backbone, for segmentation, classification and missing
modalities?

>>> from lightly_topo.benchmark import get_preset
>>> get_preset("quick").methods[:3]
('scratch', 'simclr', 'byol')

Run it with ``lightly-topo benchmark --preset quick --out DIR`` or :func:`run_benchmark`.
"""

from lightly_topo.benchmark.presets import (
    ALL_METHODS,
    CORE_METHODS,
    INSTANCE_METHODS,
    PRESETS,
    TOPO_METHODS,
    Preset,
    PresetError,
    get_preset,
)
from lightly_topo.benchmark.runner import BenchmarkError, BenchmarkResult, run_benchmark

__all__ = [
    "ALL_METHODS",
    "CORE_METHODS",
    "INSTANCE_METHODS",
    "PRESETS",
    "TOPO_METHODS",
    "BenchmarkError",
    "BenchmarkResult",
    "Preset",
    "PresetError",
    "get_preset",
    "run_benchmark",
]
