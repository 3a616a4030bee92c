"""Downstream evaluation: metrics, subject-level splits and confidence intervals."""

from __future__ import annotations

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
]
