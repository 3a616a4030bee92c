"""Downstream evaluation: segmentation, classification, missing-modality and low-label tasks,
metrics, subject-level splits and confidence intervals.

Metrics, splits and statistics are imported eagerly (they are light); the task modules, which
load MONAI, are imported on first access of one of their names.
"""

from __future__ import annotations

import importlib
from typing import Any

from lightly_topo.eval.metrics import (
    accuracy,
    auroc,
    balanced_accuracy,
    dice_per_class,
    hd95,
    mean_dice,
)
from lightly_topo.eval.splits import (
    SubjectSplit,
    kfold_subjects,
    label_fraction_subset,
    load_splits,
    save_splits,
    train_test_split_subjects,
)
from lightly_topo.eval.stats import PairedDifference, mean_ci, paired_difference_ci, t_cdf, t_ppf

_LAZY = {
    "TaskConfig": "tasks",
    "TaskResult": "tasks",
    "TaskError": "tasks",
    "IncompatibleEncoderError": "tasks",
    "MissingLabelError": "tasks",
    "EmptyClassError": "tasks",
    "load_encoder": "tasks",
    "SegmentationConfig": "segmentation",
    "SegmentationModel": "segmentation",
    "UNetDecoder3D": "segmentation",
    "run_segmentation": "segmentation",
    "predict_volume": "segmentation",
    "ClassificationConfig": "classification",
    "ClassificationModel": "classification",
    "run_classification": "classification",
    "modality_subsets": "missing_modality",
    "run_missing_modality": "missing_modality",
    "run_low_label": "low_label",
    "LowLabelResult": "low_label",
}

__all__ = [
    "PairedDifference",
    "SubjectSplit",
    "accuracy",
    "auroc",
    "balanced_accuracy",
    "dice_per_class",
    "hd95",
    "kfold_subjects",
    "label_fraction_subset",
    "load_splits",
    "mean_ci",
    "mean_dice",
    "paired_difference_ci",
    "save_splits",
    "t_cdf",
    "t_ppf",
    "train_test_split_subjects",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"lightly_topo.eval.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lightly_topo.eval' has no attribute {name!r}")
