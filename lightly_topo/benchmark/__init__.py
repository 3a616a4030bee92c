"""The baseline-comparison benchmark: does topological alignment beat (or add to) SimCLR,
BYOL and MAE on my data and backbone, for parcellation, lesion segmentation, subject labels
and missing modalities? With a positive and a negative control and a raw-intensity floor,
so a run says first whether it can rank methods at all.

>>> from lightly_topo.benchmark import get_preset
>>> get_preset("quick").methods[:3]
('scratch', 'supervised', 'simclr')

Run it with ``lightly-topo benchmark --preset quick --out DIR`` or :func:`run_benchmark`.
"""

from lightly_topo.benchmark.presets import (
    ALL_METHODS,
    CONTROLS,
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
    "CONTROLS",
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
