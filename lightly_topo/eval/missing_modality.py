"""Missing-modality sweep: train with all modalities, test on every non-empty subset.

The task model (segmentation or classification, picked by the config type) is trained once
with every available modality. At test time each of the ``2^M - 1`` non-empty subsets of
the modality vocabulary is kept in turn and the others are masked out; the
:class:`~lightly_topo.models.MultiModalEncoder` (shared mode) then fuses only the kept
modalities, so no retraining or imputation is needed.

Reported per subset: the task's summary metrics, the primary ``metric`` and its ``drop``
from the full set (``metric(full) - metric(subset)``, positive where the subset does
worse); over all subsets: ``mean`` (the full set included) and ``mean_drop`` (the full set
excluded). A test subject that lacks every modality of a subset (real data with missing
scans) is skipped for that subset and counted in ``n_subjects``; subsets that no test
subject can be evaluated on get ``NaN`` (logged).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lightly_topo.eval import _runner
from lightly_topo.eval._data import ItemCache, ItemDataset, modality_names_of
from lightly_topo.eval.splits import SubjectSplit
from lightly_topo.eval.tasks import TaskConfig, TaskError, TaskResult

logger = logging.getLogger("lightly_topo.eval")


def modality_subsets(modality_names: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``modality_names``: the full set first, then by size
    (largest first), each in vocabulary order.

    >>> modality_subsets(["t1", "t2"])
    [('t1', 't2'), ('t1',), ('t2',)]
    >>> len(modality_subsets(["t1", "t1ce", "t2", "flair"]))
    15
    """
    names = tuple(modality_names)
    if len(set(names)) != len(names):
        raise TaskError(f"modality_names has duplicates: {names}")
    if not names:
        raise TaskError("modality_names is empty: there is no subset to test")
    return [
        combo for size in range(len(names), 0, -1) for combo in itertools.combinations(names, size)
    ]


def subset_name(subset: Sequence[str]) -> str:
    """``"t1+t2"`` for ``("t1", "t2")``."""
    return "+".join(subset)


def run_missing_modality(
    encoder: nn.Module,
    dataset: ItemDataset,
    config: TaskConfig,
    *,
    split: SubjectSplit | None = None,
    metric: str | None = None,
    subsets: Sequence[Sequence[str]] | None = None,
    init: str = "pretrained",
) -> TaskResult:
    """Train once with all modalities and evaluate with each modality subset kept.

    Args:
        encoder: Multi-modal encoder (shared mode recommended); not modified.
        dataset: Items (label maps for segmentation, ``label_key`` for classification).
        config: A :class:`~lightly_topo.eval.segmentation.SegmentationConfig` or
            :class:`~lightly_topo.eval.classification.ClassificationConfig`.
        split: Subject split; ``None`` makes the task's stratified split from ``config``.
        metric: Summary metric compared across subsets; default ``"mean_dice"``
            (segmentation) or ``"balanced_accuracy"`` (classification).
        subsets: Subsets to test; default all ``2^M - 1`` (:func:`modality_subsets`). The
            full set is always evaluated (first) since drops are measured from it.
        init: Label of the encoder's start written into the result.

    Returns:
        A :class:`TaskResult` with task ``"missing_modality/<task>"``. ``metrics`` holds
        ``metric``, ``full``, ``mean``, ``mean_drop`` and ``subsets``: one dict per subset
        ``{"modalities", "name", "metric", "drop", "summary"}``. ``per_subject`` holds the
        records of every subset, each with its ``"modalities"``.

    Raises:
        TaskError: A subset naming a modality outside the dataset's vocabulary, or a
            ``metric`` the task does not report.

    >>> from lightly_topo.data.synthetic import SyntheticBrains
    >>> from lightly_topo.eval.classification import ClassificationConfig
    >>> from lightly_topo.models import MultiModalEncoder, build_backbone
    >>> backbone = build_backbone("resenc", features=(8, 16), strides=(2, 2), blocks_per_stage=1)
    >>> encoder = MultiModalEncoder(backbone, num_modalities=2)
    >>> data = SyntheticBrains(6, size=32, modalities=("t1", "flair"))
    >>> config = ClassificationConfig(steps=5, label_key="lesion", test_fraction=0.5)
    >>> result = run_missing_modality(encoder, data, config)
    >>> [(row["name"], row["drop"] == result.metrics["full"] - row["metric"])
    ...  for row in result.metrics["subsets"]]
    [('t1+flair', True), ('t1', True), ('flair', True)]
    """
    dataset = ItemCache(dataset)
    names = modality_names_of(dataset)
    metric = _runner.check_metric(metric, config)
    full = tuple(names)
    wanted = modality_subsets(names) if subsets is None else [tuple(s) for s in subsets]
    for subset in wanted:
        unknown = [m for m in subset if m not in names]
        if unknown or not subset:
            raise TaskError(
                f"modality subset {tuple(subset)} is empty or names modalities {unknown} "
                f"outside the dataset's vocabulary {names}"
            )
    ordered = [full] + [tuple(m for m in names if m in s) for s in wanted if set(s) != set(full)]

    split, train_idx, test_idx = _runner.split_subjects(dataset, config, split)
    fitted = _runner.fit(encoder, dataset, train_idx, config)

    rows: list[dict[str, Any]] = []
    per_subject: list[dict[str, Any]] = []
    for subset in ordered:
        keep = torch.tensor([m in subset for m in names], dtype=torch.bool)
        records, summary = _runner.evaluate(fitted, dataset, test_idx, config, keep)
        value = float(summary[metric])
        if math.isnan(value):
            logger.info("missing-modality: %s is undefined for subset %s", metric, subset)
        rows.append(
            {
                "modalities": list(subset),
                "name": subset_name(subset),
                "metric": value,
                "summary": summary,
            }
        )
        per_subject += [{"modalities": list(subset), **r} for r in records]
    full_value = rows[0]["metric"]
    for row in rows:
        row["drop"] = full_value - row["metric"]
    values = [r["metric"] for r in rows]
    drops = [r["drop"] for r in rows[1:]]
    metrics = {
        "metric": metric,
        "full": full_value,
        "mean": _nanmean(values),
        "mean_drop": _nanmean(drops),
        "subsets": rows,
    }
    extra = {"modality_names": list(names), **fitted.extra}
    task = f"missing_modality/{_runner.task_name(config)}"
    return _runner.result(task, config, split, init, fitted, metrics, per_subject, extra)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan
