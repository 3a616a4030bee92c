"""Shared pieces of the downstream tasks: configs, result records and errors.

Every downstream task (segmentation, classification, missing-modality sweep, low-label
curve) is run from a pretrained checkpoint *or* from scratch with the identical schedule:
the same :class:`TaskConfig` (seed, steps, optimiser, batch size, augmentation) and the same
subject split. The only difference between the two runs is the initial encoder weights
(see :func:`scratch_encoder_like`).

Results are :class:`TaskResult` records holding per-subject metrics, so a benchmark runner
can aggregate across seeds and methods with confidence intervals. ``TaskResult.to_dict()``
is JSON-serialisable (``NaN`` becomes ``None``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightly_topo.errors import LightlyTopoError
from lightly_topo.eval.splits import SubjectSplit, train_test_split_subjects

logger = logging.getLogger("lightly_topo.eval")


class TaskError(LightlyTopoError, ValueError):
    """Base class of every error a downstream task raises on bad input."""


class IncompatibleEncoderError(TaskError):
    """An encoder (or checkpoint) whose modalities or backbone do not fit the task."""


class MissingLabelError(TaskError):
    """A dataset without the labels (label map or subject label) a task needs."""


class EmptyClassError(TaskError):
    """A split or label fraction that leaves a class without any subject."""


@dataclass
class TaskConfig:
    """Schedule of a downstream task; identical for pretrained and from-scratch starts.

    Attributes:
        seed: Seeds the split, the head/decoder initialisation, the from-scratch encoder,
            the batch order, the crops and the augmentation.
        steps: Optimiser steps.
        batch_size: Subjects (patches) per step.
        lr: Learning rate of the head / decoder (and of the encoder when fine-tuned).
        encoder_lr: Learning rate of the encoder when it is fine-tuned; ``None`` uses ``lr``.
        weight_decay: Decoupled weight decay (AdamW) or L2 (SGD).
        optimizer: ``"adamw"`` or ``"sgd"`` (momentum 0.9).
        schedule: ``"cosine"`` (decay to zero over ``steps``) or ``"constant"``.
        flip: Random flips along each spatial axis (p = 0.5 each) during training.
        test_fraction: Fraction of subjects held out for testing when the task makes the
            split itself.
        device: Torch device the task runs on.
    """

    seed: int = 0
    steps: int = 50
    batch_size: int = 2
    lr: float = 1e-3
    encoder_lr: float | None = None
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    schedule: str = "cosine"
    flip: bool = True
    test_fraction: float = 0.3
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise TaskError(f"TaskConfig.steps must be >= 0, got {self.steps}")
        if self.batch_size < 1:
            raise TaskError(f"TaskConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in ("adamw", "sgd"):
            raise TaskError(
                f"TaskConfig.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}"
            )
        if self.schedule not in ("cosine", "constant"):
            raise TaskError(
                f"TaskConfig.schedule must be 'cosine' or 'constant', got {self.schedule!r}"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise TaskError(
                f"TaskConfig.test_fraction must lie in (0, 1), got {self.test_fraction}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-serialisable dict (tuples become lists)."""
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TaskConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys raise :class:`TaskError`."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise TaskError(
                f"unknown {cls.__name__} keys {unknown}; known keys are {sorted(names)}"
            )
        kwargs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items()
        }
        return cls(**kwargs)


@dataclass
class TaskResult:
    """Outcome of one downstream run, with per-subject metrics.

    Attributes:
        task: ``"segmentation"``, ``"classification/linear"``, ``"classification/finetune"``.
        init: Where the encoder weights came from: ``"scratch"`` or ``"pretrained"``
            (or any label the caller passes).
        config: The :class:`TaskConfig` as a dict.
        split: The subject split (:meth:`SubjectSplit.to_dict`: ``train``, ``test``,
            ``seed``, ...), written out with the results.
        metrics: Summary metrics over the test subjects (means; see each task).
        per_subject: One dict per test subject: ``{"subject_id": ..., <metric>: ...}``.
        history: Training loss per step.
        extra: Task-specific details (class names, modality subset, ...).
    """

    task: str
    init: str
    config: dict[str, Any]
    split: dict[str, Any]
    metrics: dict[str, Any]
    per_subject: list[dict[str, Any]]
    history: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: tensors and numpy scalars become numbers, ``NaN`` ``None``."""
        return _jsonable(asdict(self))

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` to ``path`` (parents created) and return the path."""
        return save_json(self.to_dict(), path)


def save_json(record: Any, path: str | Path) -> Path:
    """Write a result record (dict, list or dataclass) as strict JSON to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(record, "to_dict"):
        record = record.to_dict()
    path.write_text(json.dumps(_jsonable(record), indent=2, allow_nan=False))
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def scratch_encoder_like(encoder: nn.Module, seed: int) -> nn.Module:
    """A fresh encoder with the same architecture as ``encoder`` and new random weights.

    A :class:`~lightly_topo.models.MultiModalEncoder` is rebuilt from its backbone's
    ``config`` (``type(backbone)(**backbone.config)``, the backbone's own initialisation),
    with the same ``mode`` and ``num_modalities``; any other module is deep-copied and every
    submodule with ``reset_parameters`` re-initialised (other parameters are re-drawn from a
    truncated normal, std 0.02). Both happen under ``torch.manual_seed(seed)`` inside
    :func:`torch.random.fork_rng`, so the caller's global RNG state is untouched.
    Attributes ``modality_names`` and ``num_modalities`` are carried over.

    Use it to build the from-scratch start matching a pretrained encoder: the two starts
    then differ only in their weights (same parameter names and shapes).

    Args:
        encoder: The (pretrained) encoder. Not modified.
        seed: Seed of the fresh initialisation.

    Returns:
        The fresh encoder, in training mode, with gradients enabled.

    Raises:
        IncompatibleEncoderError: The rebuilt encoder's parameters differ from the
            original's in names or shapes.

    >>> from lightly_topo.models import MultiModalEncoder, build_backbone
    >>> backbone = build_backbone("resenc", features=(4, 8), blocks_per_stage=1)
    >>> enc = MultiModalEncoder(backbone, num_modalities=2)
    >>> fresh = scratch_encoder_like(enc, seed=0)
    >>> [p.shape for p in fresh.parameters()] == [p.shape for p in enc.parameters()]
    True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = getattr(encoder, "backbone", None)
        backbone_config = getattr(backbone, "config", None)
        if backbone is not None and isinstance(backbone_config, dict) and hasattr(encoder, "mode"):
            fresh = type(encoder)(
                type(backbone)(**backbone_config),
                mode=encoder.mode,
                num_modalities=int(getattr(encoder, "num_modalities", 1)),
            )
        else:
            fresh = _reset_copy(encoder)
    names = getattr(encoder, "modality_names", None)
    if names is not None:
        setattr(fresh, "modality_names", tuple(names))  # noqa: B010
    old = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    new = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    if old != new:
        diff = sorted(set(old.items()) ^ set(new.items()))[:5]
        raise IncompatibleEncoderError(
            f"rebuilding {type(encoder).__name__} from its config gave other parameters "
            f"(e.g. {diff}); the encoder's config does not describe its weights"
        )
    fresh.to(next(encoder.parameters()).device)
    fresh.train()
    for param in fresh.parameters():
        param.requires_grad_(True)
    return fresh


def _reset_copy(encoder: nn.Module) -> nn.Module:
    fresh = copy.deepcopy(encoder)
    reset: set[int] = set()
    for module in fresh.modules():
        reset_fn = getattr(module, "reset_parameters", None)
        if callable(reset_fn):
            reset_fn()
            reset.update(id(p) for p in module.parameters(recurse=False))
    with torch.no_grad():
        for param in fresh.parameters():
            if id(param) not in reset:
                nn.init.trunc_normal_(param, std=0.02)
    return fresh


def adapt_encoder(encoder: nn.Module, modality_names: Sequence[str]) -> nn.Module:
    """Fit an encoder to a dataset's modality vocabulary, or raise.

    * Encoder without recorded ``modality_names``: its ``num_modalities`` must equal
      ``len(modality_names)``; returned as is.
    * Recorded names equal to the dataset's: returned as is.
    * Shared mode, and every dataset modality among the recorded ones: the single-channel
      backbone is shared by all modalities, so a new :class:`MultiModalEncoder` over the
      dataset's vocabulary wraps the *same* backbone (logged).
    * Otherwise (a dataset modality the checkpoint never saw, or a channel-stacked encoder
      with other modalities): :class:`IncompatibleEncoderError`.

    Args:
        encoder: A :class:`~lightly_topo.models.MultiModalEncoder` (``modality_names``
            optional, set by checkpoint loading).
        modality_names: The dataset's vocabulary.

    Returns:
        An encoder whose ``num_modalities`` (and ``modality_names``) match the dataset.
    """
    wanted = tuple(modality_names)
    names = getattr(encoder, "modality_names", None)
    num = getattr(encoder, "num_modalities", None)
    if names is None:
        if num is not None and int(num) != len(wanted):
            raise IncompatibleEncoderError(
                f"the encoder takes {int(num)} modalities, the dataset has {len(wanted)} "
                f"{wanted}; use a checkpoint pretrained on these modalities"
            )
        return encoder
    names = tuple(names)
    if names == wanted:
        return encoder
    unknown = [m for m in wanted if m not in names]
    mode = getattr(encoder, "mode", None)
    if mode != "shared" or unknown:
        why = (
            f"modalities {unknown} are unknown to it"
            if unknown
            else "a channel-stacked encoder needs exactly its own modalities, in order"
        )
        raise IncompatibleEncoderError(
            f"the encoder ({mode} mode) was pretrained on modalities {names}, the dataset has "
            f"{wanted}: {why}; use a matching checkpoint or dataset modalities"
        )
    logger.info(
        "encoder pretrained on %s re-wrapped for the dataset's modalities %s (shared backbone)",
        names,
        wanted,
    )
    adapted = type(encoder)(encoder.backbone, mode="shared", num_modalities=len(wanted))
    setattr(adapted, "modality_names", wanted)  # noqa: B010
    return adapted


def load_encoder(
    path: str | Path,
    modality_names: Sequence[str] | None = None,
    map_location: str | torch.device = "cpu",
) -> nn.Module:
    """Load a pretrained encoder for downstream use from a lightly-topo checkpoint.

    The encoder is rebuilt from the checkpoint's metadata
    (:func:`lightly_topo.checkpoint.load_pretrained`). A bare backbone is wrapped in a
    :class:`~lightly_topo.models.MultiModalEncoder`: shared mode for a single-channel
    backbone, channel-stacked where its input channels equal the number of modalities. The
    checkpoint's modality vocabulary is recorded as ``encoder.modality_names``; with
    ``modality_names`` given, the encoder is fitted to it with :func:`adapt_encoder`.

    Args:
        path: Checkpoint file written by :func:`lightly_topo.checkpoint.save_pretrained`.
        modality_names: The dataset's vocabulary, or ``None`` to keep the checkpoint's.
        map_location: Device of the weights.

    Raises:
        lightly_topo.checkpoint.CheckpointError: Unreadable, corrupt or foreign file.
        IncompatibleEncoderError: Modalities (or input channels) that do not fit.
    """
    from lightly_topo.checkpoint import load_pretrained
    from lightly_topo.data.modalities import normalize_modality
    from lightly_topo.models.modality import MultiModalEncoder

    loaded = load_pretrained(path, map_location=map_location)
    encoder = loaded.model
    saved = [
        normalize_modality(m, source=str(path)) for m in loaded.metadata.get("modalities") or []
    ]
    if not isinstance(encoder, MultiModalEncoder):
        in_channels = int(getattr(encoder, "in_channels", 1))
        count = len(saved) or (len(modality_names) if modality_names is not None else 1)
        if in_channels == 1:
            encoder = MultiModalEncoder(encoder, mode="shared", num_modalities=count)  # type: ignore[arg-type]
        elif in_channels == count:
            encoder = MultiModalEncoder(encoder, mode="stacked", num_modalities=count)  # type: ignore[arg-type]
        else:
            raise IncompatibleEncoderError(
                f"checkpoint {path}: its backbone takes {in_channels} input channels but "
                f"records {count} modalities {saved}; it cannot be used as a multi-modal encoder"
            )
    if saved:
        if len(saved) != int(encoder.num_modalities):
            raise IncompatibleEncoderError(
                f"checkpoint {path} records modalities {saved} but an encoder over "
                f"{int(encoder.num_modalities)} modalities"
            )
        setattr(encoder, "modality_names", tuple(saved))  # noqa: B010
    if modality_names is not None:
        encoder = adapt_encoder(encoder, modality_names)
    encoder.eval()
    return encoder


def make_split(
    subject_ids: Sequence[str], strata: Sequence[Any] | None, config: TaskConfig
) -> SubjectSplit:
    """Subject-disjoint train/test split, stratified by ``strata``, fixed by ``config.seed``.

    Args:
        subject_ids: Subject of every dataset index (sessions of one subject repeat it).
        strata: A category per dataset index (class label, classes present, ...), or
            ``None`` for an unstratified split.
        config: Gives ``test_fraction`` and ``seed``.

    Raises:
        TaskError: The subjects cannot be split (too few, or a side left empty).

    >>> make_split(["a", "b", "c", "d"], [0, 0, 1, 1], TaskConfig(test_fraction=0.5)).test
    ('a', 'c')
    """
    try:
        return train_test_split_subjects(
            list(subject_ids), strata, test_fraction=config.test_fraction, seed=config.seed
        )
    except ValueError as error:
        raise TaskError(f"cannot split the {len(set(subject_ids))} subjects: {error}") from error


def split_indices(subject_ids: Sequence[str], split: SubjectSplit) -> tuple[list[int], list[int]]:
    """Dataset indices of the split's train and test subjects (others are left out).

    Raises:
        TaskError: A side of the split has no subject in the dataset.
    """
    train, test = set(split.train), set(split.test)
    train_idx = [i for i, s in enumerate(subject_ids) if s in train]
    test_idx = [i for i, s in enumerate(subject_ids) if s in test]
    for side, found in (("train", train_idx), ("test", test_idx)):
        if not found:
            raise TaskError(
                f"no subject of the split's {side} side is in the dataset "
                f"(e.g. {sorted(getattr(split, side))[:3]}); was the split made for another dataset?"
            )
    return train_idx, test_idx
