"""Low-label curve: the task trained on growing fractions of the labelled training subjects.

One subject split (fixed by ``config.seed``) gives the test subjects, shared by every
fraction. For each fraction, :func:`~lightly_topo.eval.splits.label_fraction_subset` keeps a
class-stratified share of the *training subjects* (nested: the subset of a smaller fraction
lies inside that of a larger one), the task is trained on it with the full schedule
(``config.steps``), and scored on the test subjects.

Class coverage:

* classification: a fraction that leaves a class without subjects raises
  :class:`~lightly_topo.eval.tasks.EmptyClassError` (the message gives the smallest fraction
  that works);
* segmentation: subjects are stratified by the set of classes present in their label map;
  where a fraction cannot keep every such combination, the subset is drawn unstratified
  instead (logged), and :class:`~lightly_topo.eval.tasks.EmptyClassError` is raised only if
  a foreground class then has no voxel in any kept subject.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from lightly_topo.eval import _runner
from lightly_topo.eval._data import ItemCache, ItemDataset, modality_names_of
from lightly_topo.eval.segmentation import (
    SegmentationConfig,
    check_class_coverage,
    infer_num_classes,
)
from lightly_topo.eval.splits import SubjectSplit, label_fraction_subset
from lightly_topo.eval.tasks import (
    EmptyClassError,
    TaskConfig,
    TaskError,
    TaskResult,
    _jsonable,
    save_json,
)

logger = logging.getLogger("lightly_topo.eval")

#: Default fractions of labelled training subjects.
DEFAULT_FRACTIONS: tuple[float, ...] = (0.1, 0.25, 1.0)


@dataclass
class LowLabelResult:
    """A low-label curve: one :class:`TaskResult` per fraction.

    Attributes:
        task: ``"low_label/<task>"``.
        init: Label of the encoder's start.
        metric: The summary metric of the curve.
        split: The train/test split (``SubjectSplit.to_dict()``).
        curve: One dict per fraction ``{"fraction", "n_labelled", "metric"}``.
        results: The full result of each fraction; ``extra["labelled"]`` lists its
            training subjects.
    """

    task: str
    init: str
    metric: str
    split: dict[str, Any]
    curve: list[dict[str, Any]]
    results: list[TaskResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``NaN`` becomes ``None``)."""
        return _jsonable(asdict(self))

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` to ``path`` and return the path."""
        return save_json(self.to_dict(), path)


def labelled_subset(
    dataset: ItemDataset,
    train_idx: Sequence[int],
    strata: Sequence[str],
    fraction: float,
    config: TaskConfig,
) -> list[int]:
    """Dataset indices of the labelled share ``fraction`` of the training subjects.

    Args:
        dataset: Items.
        train_idx: Dataset indices of the training subjects.
        strata: Stratum of every dataset index (class, or classes present).
        fraction: Share in ``(0, 1]``.
        config: Gives the seed (and, for segmentation, ``num_classes``).

    Raises:
        TaskError: ``fraction`` outside ``(0, 1]``.
        EmptyClassError: A class left without subjects (see the module docstring).
    """
    if not 0.0 < fraction <= 1.0:
        raise TaskError(f"label fraction must lie in (0, 1], got {fraction}")
    subjects = [str(dataset[i]["subject_id"]) for i in train_idx]
    labels = [strata[i] for i in train_idx]
    try:
        kept = set(label_fraction_subset(subjects, labels, fraction, seed=config.seed))
    except ValueError as error:
        if not isinstance(config, SegmentationConfig):
            raise EmptyClassError(f"label fraction {fraction}: {error}") from error
        logger.warning(
            "low-label: fraction %s cannot keep every class combination (%s); drawing the "
            "labelled subjects unstratified",
            fraction,
            error,
        )
        kept = set(label_fraction_subset(subjects, None, fraction, seed=config.seed))
    chosen = [i for i in train_idx if str(dataset[i]["subject_id"]) in kept]
    if isinstance(config, SegmentationConfig):
        k = config.num_classes or infer_num_classes(dataset, train_idx)
        check_class_coverage(dataset, chosen, k, what=f"labelled subset at fraction {fraction}")
    return chosen


def run_low_label(
    encoder: nn.Module,
    dataset: ItemDataset,
    config: TaskConfig,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    *,
    split: SubjectSplit | None = None,
    metric: str | None = None,
    init: str = "pretrained",
) -> LowLabelResult:
    """Train and test the task at each fraction of labelled training subjects.

    Args:
        encoder: Multi-modal encoder; not modified.
        dataset: Items (label maps for segmentation, ``label_key`` for classification).
        config: A :class:`~lightly_topo.eval.segmentation.SegmentationConfig` or
            :class:`~lightly_topo.eval.classification.ClassificationConfig`; every fraction
            uses the same schedule.
        fractions: Shares of the training subjects, each in ``(0, 1]``.
        split: Subject split; ``None`` makes the task's stratified split from ``config``.
        metric: Summary metric of the curve; default ``"mean_dice"`` or
            ``"balanced_accuracy"``.
        init: Label of the encoder's start written into the results.

    Returns:
        The :class:`LowLabelResult`, fractions in increasing order.

    Raises:
        EmptyClassError: A fraction that leaves a class empty (see the module docstring);
            checked for every fraction before any training.

    >>> from lightly_topo.data.synthetic import SyntheticBrains
    >>> from lightly_topo.eval.classification import ClassificationConfig
    >>> from lightly_topo.models import MultiModalEncoder, build_backbone
    >>> backbone = build_backbone("resenc", features=(8, 16), strides=(2, 2), blocks_per_stage=1)
    >>> encoder = MultiModalEncoder(backbone, num_modalities=1)
    >>> data = SyntheticBrains(10, size=32, modalities=("t1",))
    >>> config = ClassificationConfig(steps=5, label_key="lesion", test_fraction=0.2)
    >>> curve = run_low_label(encoder, data, config, fractions=(0.25, 1.0)).curve
    >>> [(point["fraction"], point["n_labelled"]) for point in curve]
    [(0.25, 2), (1.0, 8)]
    """
    if not fractions:
        raise TaskError("run_low_label: no fraction given")
    ordered = sorted({float(f) for f in fractions})
    dataset = ItemCache(dataset)
    metric = _runner.check_metric(metric, config)
    strata = _runner.strata(dataset, config)
    split, train_idx, test_idx = _runner.split_subjects(dataset, config, split, strata)
    subsets = [labelled_subset(dataset, train_idx, strata, f, config) for f in ordered]
    results: list[TaskResult] = []
    curve: list[dict[str, Any]] = []
    for fraction, chosen in zip(ordered, subsets):
        fitted = _runner.fit(encoder, dataset, chosen, config)
        records, summary = _runner.evaluate(fitted, dataset, test_idx, config)
        labelled = sorted({str(dataset[i]["subject_id"]) for i in chosen})
        extra = {
            "fraction": fraction,
            "labelled": labelled,
            "modality_names": list(modality_names_of(dataset)),
            **fitted.extra,
        }
        task = _runner.task_name(config)
        results.append(_runner.result(task, config, split, init, fitted, summary, records, extra))
        curve.append(
            {"fraction": fraction, "n_labelled": len(labelled), "metric": float(summary[metric])}
        )
    return LowLabelResult(
        task=f"low_label/{_runner.task_name(config)}",
        init=init,
        metric=metric,
        split=split.to_dict(),
        curve=curve,
        results=results,
    )
