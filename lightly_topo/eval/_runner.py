"""Private dispatch over the two trainable tasks (segmentation, classification).

:func:`run` is the body of :func:`~lightly_topo.eval.segmentation.run_segmentation` and
:func:`~lightly_topo.eval.classification.run_classification`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from lightly_topo.eval._data import ItemCache, ItemDataset, modality_names_of
from lightly_topo.eval.classification import (
    ClassificationConfig,
    classification_strata,
    evaluate_classification,
    fit_classification,
)
from lightly_topo.eval.segmentation import (
    SegmentationConfig,
    evaluate_segmentation,
    fit_segmentation,
    segmentation_strata,
)
from lightly_topo.eval.splits import SubjectSplit
from lightly_topo.eval.tasks import TaskConfig, TaskError, TaskResult, make_split, split_indices

TrainableConfig = SegmentationConfig | ClassificationConfig


@dataclass
class Fitted:
    """A trained model with what evaluation needs."""

    model: nn.Module
    history: list[float]
    extra: dict[str, Any] = field(default_factory=dict)


def task_name(config: TaskConfig) -> str:
    if isinstance(config, SegmentationConfig):
        return "segmentation"
    if isinstance(config, ClassificationConfig):
        return f"classification/{config.mode}"
    raise TaskError(
        f"expected a SegmentationConfig or ClassificationConfig, got {type(config).__name__}"
    )


def default_metric(config: TaskConfig) -> str:
    return "mean_dice" if isinstance(config, SegmentationConfig) else "balanced_accuracy"


def metric_names(config: TaskConfig) -> tuple[str, ...]:
    if isinstance(config, SegmentationConfig):
        return ("mean_dice", "mean_hd95") if config.compute_hd95 else ("mean_dice",)
    task_name(config)
    return ("accuracy", "balanced_accuracy", "auroc")


def check_metric(metric: str | None, config: TaskConfig) -> str:
    """``metric`` (default: the task's) after checking that the task reports it."""
    metric = metric or default_metric(config)
    known = metric_names(config)
    if metric not in known:
        raise TaskError(
            f"metric {metric!r} is not reported by {task_name(config)}; choose one of {known}"
        )
    return metric


def strata(dataset: ItemDataset, config: TaskConfig) -> list[str]:
    if isinstance(config, SegmentationConfig):
        return segmentation_strata(dataset, config.num_classes)
    if isinstance(config, ClassificationConfig):
        return classification_strata(dataset, config.label_key)
    task_name(config)
    return []


def fit(
    encoder: nn.Module, dataset: ItemDataset, train_idx: Sequence[int], config: TaskConfig
) -> Fitted:
    if isinstance(config, SegmentationConfig):
        model, history = fit_segmentation(encoder, dataset, train_idx, config)
        return Fitted(model, history, {"num_classes": model.decoder.num_classes})
    if isinstance(config, ClassificationConfig):
        cmodel, history, names = fit_classification(encoder, dataset, train_idx, config)
        return Fitted(cmodel, history, {"class_names": names, "label_key": config.label_key})
    task_name(config)
    raise AssertionError  # unreachable: task_name raised


def evaluate(
    fitted: Fitted,
    dataset: ItemDataset,
    test_idx: Sequence[int],
    config: TaskConfig,
    keep: Tensor | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if isinstance(config, SegmentationConfig):
        return evaluate_segmentation(fitted.model, dataset, test_idx, config, keep)  # type: ignore[arg-type]
    if isinstance(config, ClassificationConfig):
        return evaluate_classification(
            fitted.model,  # type: ignore[arg-type]
            dataset,
            test_idx,
            config,
            fitted.extra["class_names"],
            keep,
        )
    task_name(config)
    raise AssertionError  # unreachable: task_name raised


def split_subjects(
    dataset: ItemDataset,
    config: TaskConfig,
    split: SubjectSplit | None,
    labels: list[str] | None = None,
) -> tuple[SubjectSplit, list[int], list[int]]:
    """The subject split and the dataset indices of its train and test sides.

    Args:
        dataset: Items.
        config: The task's config.
        split: Subject split; ``None`` makes the task's stratified split from ``config``.
        labels: The items' strata where the caller has them (:func:`strata`), or ``None``.

    Returns:
        The split, the training indices and the test indices.
    """
    subject_ids = [str(dataset[i]["subject_id"]) for i in range(len(dataset))]
    if split is None:
        split = make_split(
            subject_ids, strata(dataset, config) if labels is None else labels, config
        )
    train_idx, test_idx = split_indices(subject_ids, split)
    return split, train_idx, test_idx


def run(
    encoder: nn.Module,
    dataset: ItemDataset,
    config: TaskConfig,
    split: SubjectSplit | None,
    init: str,
) -> TaskResult:
    """Train on the training subjects and score the test subjects.

    Args:
        encoder: Multi-modal encoder; not modified.
        dataset: Items with the task's labels.
        config: A :class:`SegmentationConfig` or :class:`ClassificationConfig`.
        split: Subject split; ``None`` makes the task's stratified split from ``config``.
        init: Label of the encoder's start written into the result.

    Returns:
        A :class:`TaskResult` with task :func:`task_name`.
    """
    dataset = ItemCache(dataset)
    split, train_idx, test_idx = split_subjects(dataset, config, split)
    fitted = fit(encoder, dataset, train_idx, config)
    records, summary = evaluate(fitted, dataset, test_idx, config)
    extra = {**fitted.extra, "modality_names": list(modality_names_of(dataset))}
    return result(task_name(config), config, split, init, fitted, summary, records, extra)


def result(
    task: str,
    config: TaskConfig,
    split: SubjectSplit,
    init: str,
    fitted: Fitted,
    metrics: dict[str, Any],
    per_subject: list[dict[str, Any]],
    extra: dict[str, Any],
) -> TaskResult:
    """The :class:`TaskResult` of one fitted task (config, split and history filled in)."""
    return TaskResult(
        task=task,
        init=init,
        config=config.to_dict(),
        split=split.to_dict(),
        metrics=metrics,
        per_subject=per_subject,
        history=fitted.history,
        extra=extra,
    )
