"""Subject classification: linear probe on frozen pooled features, and full fine-tuning.

The encoder's pooled embedding ``(B, embed_dim)`` of a whole volume (optionally centre
cropped or zero-padded to ``input_size``) feeds a linear layer.

* ``mode="linear"``: the encoder is frozen (``requires_grad=False``, eval mode). Features of
  every subject are extracted once, standardised with the training subjects' mean and
  standard deviation, and the linear layer is trained on all training features at once
  (full batch, no augmentation) for ``steps`` steps.
* ``mode="finetune"``: encoder and linear layer are trained end to end on random batches of
  ``batch_size`` subjects with random flips.

Metrics over the test subjects: accuracy, balanced accuracy and AUROC (one-vs-rest macro
average over classes when there are more than two). AUROC is ``NaN`` (logged) when a class
is missing from the test subjects. Labels are taken from ``item["labels"][label_key]``;
numbers and strings are mapped to class indices in sorted order (``class_names``).

- Lightly benchmarks' linear evaluation: https://docs.lightly.ai/self-supervised-learning/
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightly_topo.eval._data import (
    ItemDataset,
    as_cache,
    center_start,
    crop_or_pad,
    finetune_groups,
    fit_loop,
    item_tensors,
    kept_mask,
    modality_names_of,
    prepare_fit,
    random_flip,
    size_divisor,
    train,
)
from lightly_topo.eval.splits import SubjectSplit
from lightly_topo.eval.tasks import (
    EmptyClassError,
    IncompatibleEncoderError,
    MissingLabelError,
    TaskConfig,
    TaskError,
    TaskResult,
)

logger = logging.getLogger("lightly_topo.eval")

_MODES = ("linear", "finetune")


@dataclass
class ClassificationConfig(TaskConfig):
    """Schedule of classification (see :class:`TaskConfig` for the shared fields).

    Attributes:
        label_key: The subject label to predict, e.g. ``"lesion"`` or ``"lesion_type"``.
        mode: ``"linear"`` (frozen encoder, linear probe) or ``"finetune"`` (end to end).
        input_size: Centre crop / zero-pad every volume to ``(D, H, W)``; ``None`` uses the
            whole volume (all subjects must then share one shape, a multiple of the
            encoder's size divisor).
    """

    label_key: str = "lesion"
    mode: str = "linear"
    input_size: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in _MODES:
            raise TaskError(f"ClassificationConfig.mode must be one of {_MODES}, got {self.mode!r}")
        if self.input_size is not None:
            size = tuple(int(s) for s in self.input_size)
            if len(size) != 3 or min(size) < 1:
                raise TaskError(
                    f"ClassificationConfig.input_size must be 3 positive sizes (D, H, W) or "
                    f"None, got {self.input_size}"
                )
            self.input_size = (size[0], size[1], size[2])


class ClassificationModel(nn.Module):
    """Encoder + linear layer on the pooled embedding: ``(B, M, D, H, W)``, mask -> logits.

    The embedding is standardised with the buffers ``feature_mean`` / ``feature_std``
    (zero and one unless set, as the linear probe does).

    Args:
        encoder: Multi-modal encoder whose ``forward(image, mask)`` returns
            ``(B, embed_dim)``.
        num_classes: Output classes.
    """

    feature_mean: Tensor
    feature_std: Tensor

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        embed_dim = int(getattr(encoder, "embed_dim", 0))
        if embed_dim < 1:
            raise IncompatibleEncoderError(
                f"encoder {type(encoder).__name__} has no positive embed_dim; classification "
                "needs a pooled embedding"
            )
        self.encoder = encoder
        self.head = nn.Linear(embed_dim, num_classes)
        self.register_buffer("feature_mean", torch.zeros(embed_dim))
        self.register_buffer("feature_std", torch.ones(embed_dim))
        self.num_classes = num_classes

    def embed(self, image: Tensor, mask: Tensor) -> Tensor:
        """Standardised pooled embedding ``(B, embed_dim)``."""
        embedding: Tensor = self.encoder(image, mask)
        return (embedding - self.feature_mean) / self.feature_std

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)``."""
        return self.head(self.embed(image, mask))


def class_labels(
    dataset: ItemDataset, indices: Sequence[int], label_key: str
) -> tuple[list[int], list[str]]:
    """Class index of each listed subject and the class names (sorted label values).

    Raises:
        MissingLabelError: Subjects without ``label_key``.
        TaskError: Fewer than two classes, or non-integer numeric labels (regression).
    """
    values: list[Any] = []
    missing: list[str] = []
    for i in indices:
        labels = dataset[i].get("labels") or {}
        value = labels.get(label_key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            missing.append(str(dataset[i]["subject_id"]))
        values.append(value)
    if missing:
        known = sorted(dataset[indices[0]].get("labels") or {}) if indices else []
        raise MissingLabelError(
            f"classification needs the subject label {label_key!r}; {len(missing)} subject(s) "
            f"lack it (e.g. {missing[:5]}); labels of the first subject: {known}"
        )
    for v in values:
        if isinstance(v, float) and not float(v).is_integer():
            raise TaskError(
                f"label {label_key!r} has the non-integer value {v}: classification needs "
                "categories (integers, booleans or strings)"
            )
    keys = [str(int(v)) if isinstance(v, bool | int | float) else str(v) for v in values]
    numeric = all(isinstance(v, bool | int | float) for v in values)
    names = sorted(set(keys), key=(lambda k: int(k)) if numeric else str)
    if len(names) < 2:
        raise TaskError(
            f"label {label_key!r} takes a single value {names} over {len(keys)} subjects; "
            "classification needs at least two classes"
        )
    lookup = {name: c for c, name in enumerate(names)}
    return [lookup[k] for k in keys], names


def _volume(
    dataset: ItemDataset,
    index: int,
    modality_names: Sequence[str],
    input_size: Sequence[int] | None,
) -> tuple[Tensor, Tensor]:
    image, mask, _ = item_tensors(dataset[index], modality_names)
    if input_size is not None:
        image = crop_or_pad(image, center_start(image.shape[1:], input_size), input_size)
    return image, mask


def _check_input_size(
    encoder: nn.Module, dataset: ItemDataset, indices: Sequence[int], config: ClassificationConfig
) -> None:
    divisor = size_divisor(encoder)
    shapes = {
        tuple(dataset[i]["images"][next(iter(dataset[i]["images"]))].shape[-3:]) for i in indices
    }
    sizes = [config.input_size] if config.input_size is not None else sorted(shapes)
    if config.input_size is None and len(shapes) > 1:
        raise TaskError(
            f"subjects have different volume shapes {sorted(shapes)[:4]}; set "
            "ClassificationConfig.input_size to crop or pad them to one shape"
        )
    for size in sizes:
        if any(s % divisor for s in size):
            fixed = tuple(-(-s // divisor) * divisor for s in size)
            raise IncompatibleEncoderError(
                f"input size {tuple(size)} is not a multiple of the encoder's size divisor "
                f"{divisor}; set ClassificationConfig.input_size={fixed}"
            )


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    dataset: ItemDataset,
    indices: Sequence[int],
    input_size: Sequence[int] | None = None,
    keep: Tensor | None = None,
    device: str = "cpu",
) -> Tensor:
    """Pooled embeddings ``(N, embed_dim)`` of the listed subjects, encoder in eval mode.

    Args:
        encoder: Multi-modal encoder (``forward(image, mask) -> (B, embed_dim)``).
        dataset: Items.
        indices: Dataset indices.
        input_size: Centre crop / pad size, or ``None`` for whole volumes.
        keep: Optional bool ``(M,)``: modalities kept (the others are masked out).
        device: Torch device.
    """
    modality_names = modality_names_of(dataset)
    was_training = encoder.training
    encoder.eval()
    out = []
    for index in indices:
        image, mask = _volume(dataset, index, modality_names, input_size)
        if keep is not None:
            mask = mask & keep
        out.append(encoder(image[None].to(device), mask[None].to(device)).cpu())
    encoder.train(was_training)
    return torch.cat(out)


def fit_classification(
    encoder: nn.Module,
    dataset: ItemDataset,
    train_indices: Sequence[int],
    config: ClassificationConfig,
) -> tuple[ClassificationModel, list[float], list[str]]:
    """Train a linear probe or fine-tune on the listed subjects.

    The encoder is deep-copied (the caller's module is never changed). The head's
    initialisation and the batch order and flips come from ``config.seed`` only, so runs
    that differ only in the encoder weights follow the same schedule.

    Args:
        encoder: Multi-modal encoder (pretrained or fresh).
        dataset: Items with the subject label ``config.label_key``.
        train_indices: Dataset indices of the training subjects.
        config: The schedule; ``config.mode`` picks probe or fine-tuning.

    Returns:
        The trained model (eval mode), the loss of every step and the class names.

    Raises:
        MissingLabelError: Subjects without the label.
        EmptyClassError: A class with no training subject.
        IncompatibleEncoderError: An encoder that does not fit the dataset or input size.
    """
    encoder, dataset, modality_names = prepare_fit(
        "fit_classification", encoder, dataset, train_indices
    )
    _check_input_size(encoder, dataset, train_indices, config)
    all_targets, names = class_labels(dataset, range(len(dataset)), config.label_key)
    targets = torch.tensor([all_targets[i] for i in train_indices])
    counts = torch.bincount(targets, minlength=len(names))
    empty = [names[c] for c in range(len(names)) if counts[c] == 0]
    if empty:
        raise EmptyClassError(
            f"class(es) {empty} of label {config.label_key!r} have no training subject "
            f"({len(train_indices)} subjects); use a larger label fraction or another seed"
        )

    def fit(model: ClassificationModel, generator: torch.Generator) -> list[float]:
        if config.mode == "linear":
            return _fit_probe(model, dataset, train_indices, targets, config, generator)
        return _fit_finetune(
            model, dataset, train_indices, targets, modality_names, config, generator
        )

    model, history = train(
        config, lambda: ClassificationModel(copy.deepcopy(encoder), len(names)), fit
    )
    return model, history, names


def _fit_probe(
    model: ClassificationModel,
    dataset: ItemDataset,
    indices: Sequence[int],
    targets: Tensor,
    config: ClassificationConfig,
    generator: torch.Generator,
) -> list[float]:
    device = torch.device(config.device)
    for param in model.encoder.parameters():
        param.requires_grad_(False)
    model.encoder.eval()
    features = extract_features(
        model.encoder, dataset, indices, config.input_size, device=config.device
    ).to(device)
    model.feature_mean.copy_(features.mean(0))
    std = features.std(0, unbiased=False) if len(features) > 1 else torch.ones_like(features[0])
    model.feature_std.copy_(std.clamp_min(1e-6))
    standardised = (features - model.feature_mean) / model.feature_std
    target = targets.to(device)

    def step_loss(net: nn.Module, gen: torch.Generator) -> Tensor:
        return F.cross_entropy(model.head(standardised), target)

    history = fit_loop(
        model.head, [{"params": list(model.head.parameters())}], config, step_loss, generator
    )
    model.encoder.eval()
    return history


def _fit_finetune(
    model: ClassificationModel,
    dataset: ItemDataset,
    indices: Sequence[int],
    targets: Tensor,
    modality_names: Sequence[str],
    config: ClassificationConfig,
    generator: torch.Generator,
) -> list[float]:
    device = torch.device(config.device)
    for param in model.encoder.parameters():
        param.requires_grad_(True)

    def step_loss(net: nn.Module, gen: torch.Generator) -> Tensor:
        picks = torch.randint(len(indices), (config.batch_size,), generator=gen).tolist()
        images, masks = [], []
        for p in picks:
            image, mask = _volume(dataset, indices[p], modality_names, config.input_size)
            if config.flip:
                (image,) = random_flip([image], gen)
            images.append(image)
            masks.append(mask)
        logits = net(torch.stack(images).to(device), torch.stack(masks).to(device))
        return F.cross_entropy(logits, targets[picks].to(device))

    groups = finetune_groups(model.encoder, model.head, config)
    return fit_loop(model, groups, config, step_loss, generator)


@torch.no_grad()
def evaluate_classification(
    model: ClassificationModel,
    dataset: ItemDataset,
    test_indices: Sequence[int],
    config: ClassificationConfig,
    class_names: Sequence[str],
    keep: Tensor | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Predict the test subjects and score them.

    Args:
        model: A trained :class:`ClassificationModel`.
        dataset: Items with the label ``config.label_key``.
        test_indices: Dataset indices of the test subjects.
        config: Gives ``label_key``, ``input_size`` and ``device``.
        class_names: Class names from :func:`fit_classification`.
        keep: Optional bool ``(M,)``: modalities kept at test time (the others are masked
            out). A subject left with no modality is skipped (logged).

    Returns:
        Per-subject records ``{"subject_id", "target", "pred", "probs"}`` (class indices into
        ``class_names``) and the summary ``{"accuracy", "balanced_accuracy", "auroc",
        "n_subjects"}``.
    """
    dataset = as_cache(dataset)
    modality_names = modality_names_of(dataset)
    all_targets, names = class_labels(dataset, range(len(dataset)), config.label_key)
    if list(names) != list(class_names):
        raise TaskError(
            f"the dataset's classes {names} of label {config.label_key!r} differ from the "
            f"model's {list(class_names)}"
        )
    device = torch.device(config.device)
    model.eval()
    records: list[dict[str, Any]] = []
    for index in test_indices:
        image, mask = _volume(dataset, index, modality_names, config.input_size)
        kept = kept_mask(mask, keep, "classification", dataset[index]["subject_id"])
        if kept is None:
            continue
        probs = model(image[None].to(device), kept[None].to(device)).softmax(-1)[0].cpu()
        records.append(
            {
                "subject_id": str(dataset[index]["subject_id"]),
                "target": all_targets[index],
                "pred": int(probs.argmax()),
                "probs": [float(p) for p in probs],
            }
        )
    return records, classification_summary(records, len(class_names))


def classification_summary(records: Sequence[dict[str, Any]], num_classes: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy and AUROC (macro one-vs-rest) of per-subject records."""
    from lightly_topo.eval import metrics

    summary: dict[str, Any] = {"n_subjects": len(records)}
    if not records:
        return summary | {"accuracy": math.nan, "balanced_accuracy": math.nan, "auroc": math.nan}
    pred = [r["pred"] for r in records]
    target = [r["target"] for r in records]
    summary["accuracy"] = metrics.accuracy(pred, target)
    summary["balanced_accuracy"] = metrics.balanced_accuracy(pred, target)
    probs = torch.tensor([r["probs"] for r in records], dtype=torch.float64)
    scores = probs[:, 1] if num_classes == 2 else probs
    try:
        summary["auroc"] = metrics.auroc(scores, target)
    except ValueError as error:
        logger.info("classification: AUROC undefined on the test subjects (%s); NaN", error)
        summary["auroc"] = math.nan
    return summary


def classification_strata(dataset: ItemDataset, label_key: str) -> list[str]:
    """Stratum of every subject for splitting: its class name under ``label_key``."""
    targets, names = class_labels(dataset, range(len(dataset)), label_key)
    return [names[t] for t in targets]


def run_classification(
    encoder: nn.Module,
    dataset: ItemDataset,
    config: ClassificationConfig,
    *,
    split: SubjectSplit | None = None,
    init: str = "pretrained",
) -> TaskResult:
    """Train (probe or fine-tune) on the training subjects and score the test subjects.

    Args:
        encoder: Multi-modal encoder; not modified. For the from-scratch baseline pass
            :func:`~lightly_topo.eval.tasks.scratch_encoder_like` of the pretrained one.
        dataset: Items with the subject label ``config.label_key``.
        config: The schedule.
        split: Subject split; ``None`` makes a subject-disjoint split stratified by the
            label, fixed by ``config.seed``.
        init: Label of the encoder's start written into the result.

    Returns:
        A :class:`TaskResult` with task ``"classification/<mode>"``.

    >>> from lightly_topo.data.synthetic import SyntheticBrains
    >>> from lightly_topo.models import MultiModalEncoder, build_backbone
    >>> backbone = build_backbone("resenc", features=(8, 16), strides=(2, 2), blocks_per_stage=1)
    >>> encoder = MultiModalEncoder(backbone, num_modalities=2)
    >>> data = SyntheticBrains(6, size=32, modalities=("t1", "flair"))
    >>> config = ClassificationConfig(steps=10, label_key="lesion", test_fraction=0.5)
    >>> result = run_classification(encoder, data, config)
    >>> result.task, sorted(result.metrics)
    ('classification/linear', ['accuracy', 'auroc', 'balanced_accuracy', 'n_subjects'])
    """
    from lightly_topo.eval import _runner  # _runner imports this module

    return _runner.run(encoder, dataset, config, split, init)
