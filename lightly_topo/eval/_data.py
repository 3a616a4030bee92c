"""Private helpers of the downstream tasks: item access, crops, flips, training."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, cast

import torch
from torch import Tensor, nn

from lightly_topo.eval.tasks import (
    IncompatibleEncoderError,
    MissingLabelError,
    TaskConfig,
    TaskError,
    adapt_encoder,
)

logger = logging.getLogger("lightly_topo.eval")

ModelT = TypeVar("ModelT", bound=nn.Module)


class ItemDataset(Protocol):
    """What the tasks need from a dataset: ``len`` and items (``VolumeItem`` dicts)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


class ItemCache:
    """Reads each dataset item once and keeps it (the tasks revisit items every step)."""

    def __init__(self, dataset: ItemDataset) -> None:
        self.dataset = dataset
        self._items: dict[int, dict[str, Any]] = {}

    @property
    def modality_names(self) -> tuple[str, ...] | None:
        names = getattr(self.dataset, "modality_names", None)
        return None if names is None else tuple(names)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index not in self._items:
            self._items[index] = self.dataset[index]
        return self._items[index]


def as_cache(dataset: ItemDataset) -> ItemCache:
    """``dataset`` itself where it is an :class:`ItemCache`, else a cache around it."""
    return dataset if isinstance(dataset, ItemCache) else ItemCache(dataset)


def modality_names_of(dataset: ItemDataset) -> tuple[str, ...]:
    """The modality vocabulary of a dataset (attribute ``modality_names`` or first item)."""
    names = getattr(dataset, "modality_names", None)
    if names is None:
        if len(dataset) == 0:
            raise TaskError("the dataset holds no subject")
        names = dataset[0]["modality_names"]
    return tuple(names)


def item_tensors(
    item: dict[str, Any], modality_names: Sequence[str]
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Stack one item's modalities.

    Returns:
        ``image`` float32 (M, D, H, W) with zeros for missing modalities, ``mask`` bool (M,),
        and ``label_map`` int64 (1, D, H, W) or ``None``.
    """
    images: dict[str, Tensor] = item["images"]
    mask = torch.as_tensor(item["mask"], dtype=torch.bool).clone()
    item_names = tuple(item.get("modality_names", modality_names))
    if item_names != tuple(modality_names):
        raise TaskError(
            f"subject {item.get('subject_id')!r} has modality vocabulary {item_names}, "
            f"but the task uses {tuple(modality_names)}; use one dataset vocabulary"
        )
    if not images:
        raise TaskError(f"subject {item.get('subject_id')!r} has no modality")
    reference = next(iter(images.values()))
    spatial = tuple(reference.shape[-3:])
    image = torch.zeros((len(modality_names), *spatial), dtype=torch.float32)
    for m, name in enumerate(modality_names):
        if name in images and bool(mask[m]):
            image[m] = images[name].reshape(spatial).float()
        else:
            mask[m] = False
    label_map = item.get("label_map")
    if label_map is not None:
        label_map = torch.as_tensor(label_map).long().reshape(1, *spatial)
    return image, mask, label_map


def kept_mask(mask: Tensor, keep: Tensor | None, task: str, subject_id: Any) -> Tensor | None:
    """``mask`` limited to the modalities in ``keep``; ``None`` (logged) where none is left.

    Args:
        mask: Bool ``(M,)`` of the modalities a subject has.
        keep: Optional bool ``(M,)`` of the modalities kept at test time.
        task: Task name for the log line.
        subject_id: The subject, for the log line.
    """
    if keep is not None:
        mask = mask & keep
    if not bool(mask.any()):
        logger.info("%s: subject %r has none of the kept modalities; skipped", task, subject_id)
        return None
    return mask


def crop_or_pad(volume: Tensor, start: Sequence[int], size: Sequence[int]) -> Tensor:
    """Crop ``volume`` (C, D, H, W) to ``size`` at ``start``; zero-pad where it is too small.

    ``start`` may be negative (padding before the volume) or run past the end.
    """
    out = volume.new_zeros((volume.shape[0], *size))
    src, dst = [], []
    for axis, (s, n) in enumerate(zip(start, size)):
        extent = volume.shape[1 + axis]
        lo, hi = max(s, 0), min(s + n, extent)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[(slice(None), *dst)] = volume[(slice(None), *src)]
    return out


def center_start(shape: Sequence[int], size: Sequence[int]) -> list[int]:
    """Start of a centred crop (negative where the volume is smaller than ``size``)."""
    return [(n - s) // 2 for n, s in zip(shape, size)]


def random_start(
    shape: Sequence[int],
    size: Sequence[int],
    generator: torch.Generator,
    centre: Sequence[int] | None = None,
) -> list[int]:
    """Start of a random crop; with ``centre``, the crop holds that voxel."""
    start = []
    for axis, (n, s) in enumerate(zip(shape, size)):
        if centre is None:
            lo, hi = 0, max(n - s, 0)
        else:
            c = int(centre[axis])
            lo, hi = max(c - s + 1, min(0, n - s)), min(c, max(n - s, 0))
            lo = min(lo, hi)
        offset = int(torch.randint(lo, hi + 1, (1,), generator=generator))
        start.append(offset if n >= s else (n - s) // 2)
    return start


def random_flip(tensors: Sequence[Tensor], generator: torch.Generator) -> list[Tensor]:
    """Flip all ``tensors`` (C, D, H, W) along the same random subset of spatial axes."""
    flips = torch.rand(3, generator=generator) < 0.5
    dims = [1 + a for a in range(3) if bool(flips[a])]
    if not dims:
        return list(tensors)
    return [t.flip(dims) for t in tensors]


def make_optimizer(groups: list[dict[str, Any]], config: TaskConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer`` over parameter groups."""
    groups = [g for g in groups if list(g["params"])]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def check_encoder(encoder: nn.Module, modality_names: Sequence[str]) -> None:
    """Raise :class:`IncompatibleEncoderError` where the encoder does not fit the dataset.

    The encoder needs the :class:`~lightly_topo.models.MultiModalEncoder` interface
    (``forward_fused``, ``embed_dim``, ``feature_channels``) and ``num_modalities`` equal to
    the dataset's vocabulary size. Where it records ``modality_names`` (an encoder from
    :func:`~lightly_topo.eval.tasks.load_encoder` does), they must equal the dataset's, in
    order; :func:`~lightly_topo.eval.tasks.adapt_encoder` re-orders a shared encoder.
    """
    for attr in ("forward_fused", "embed_dim", "feature_channels", "num_modalities"):
        if not hasattr(encoder, attr):
            raise IncompatibleEncoderError(
                f"encoder {type(encoder).__name__} has no {attr!r}; downstream tasks need a "
                "lightly_topo.models.MultiModalEncoder (or a module with its interface)"
            )
    names = getattr(encoder, "modality_names", None)
    if names is not None and tuple(names) != tuple(modality_names):
        raise IncompatibleEncoderError(
            f"the encoder was built for modalities {tuple(names)}, the dataset has "
            f"{tuple(modality_names)}; pass the encoder through "
            "lightly_topo.eval.tasks.adapt_encoder or use a matching dataset"
        )
    num_modalities = int(cast(Any, encoder).num_modalities)
    if num_modalities != len(modality_names):
        raise IncompatibleEncoderError(
            f"the encoder takes {num_modalities} modalities, the dataset has "
            f"{len(modality_names)} {tuple(modality_names)}; use a checkpoint pretrained on "
            "these modalities"
        )


def size_divisor(encoder: nn.Module) -> int:
    """Every input spatial size must be a multiple of this (the backbone's ``size_divisor``)."""
    divisor = getattr(encoder, "size_divisor", None)
    if divisor is None:
        divisor = getattr(getattr(encoder, "backbone", None), "size_divisor", None)
    if divisor is None:
        divisor = max(getattr(encoder, "feature_strides", (1,)))
    return int(divisor)


def require_label_maps(dataset: ItemDataset, indices: Sequence[int]) -> None:
    """Raise :class:`MissingLabelError` naming the subjects that lack a label map."""
    missing = [str(dataset[i]["subject_id"]) for i in indices if dataset[i]["label_map"] is None]
    if missing:
        raise MissingLabelError(
            f"segmentation needs a label map for every subject; {len(missing)} have none "
            f"(e.g. {missing[:5]}); build the dataset with label maps or drop these subjects"
        )


def prepare_fit(
    caller: str, encoder: nn.Module, dataset: ItemDataset, train_indices: Sequence[int]
) -> tuple[nn.Module, ItemCache, tuple[str, ...]]:
    """Checks shared by the tasks' ``fit_*`` functions.

    Args:
        caller: Name of the fit function, for the error message.
        encoder: Multi-modal encoder.
        dataset: Items.
        train_indices: Dataset indices of the training subjects.

    Returns:
        The encoder adapted to the dataset's modalities (:func:`adapt_encoder`), the cached
        dataset and its modality names.

    Raises:
        TaskError: No training subject.
        IncompatibleEncoderError: An encoder that does not fit the dataset's modalities.
    """
    if not train_indices:
        raise TaskError(f"{caller}: no training subject")
    cache = as_cache(dataset)
    modality_names = modality_names_of(cache)
    encoder = adapt_encoder(encoder, modality_names)
    check_encoder(encoder, modality_names)
    return encoder, cache, modality_names


def fit_loop(
    model: nn.Module,
    groups: list[dict[str, Any]],
    config: TaskConfig,
    step_loss: Any,
    generator: torch.Generator,
) -> list[float]:
    """Run ``config.steps`` optimiser steps; ``step_loss(model, generator)`` returns the loss.

    The learning rate follows ``config.schedule`` (constant or cosine decay to zero).
    Returns the loss of every step.
    """
    optimizer = make_optimizer(groups, config)
    total = max(config.steps, 1)
    if config.schedule == "cosine":
        scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * s / total))
        )
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    history: list[float] = []
    model.train()
    for _ in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(model, generator)
        if not torch.isfinite(loss):
            raise TaskError(
                f"training loss became {loss.item()} at step {len(history)}; lower "
                f"TaskConfig.lr (now {config.lr}) or check the input intensities"
            )
        loss.backward()
        optimizer.step()
        scheduler.step()
        history.append(float(loss.detach()))
    return history


def finetune_groups(
    encoder: nn.Module, head: nn.Module, config: TaskConfig
) -> list[dict[str, Any]]:
    """Parameter groups of end-to-end training: the encoder at ``config.encoder_lr`` (default
    ``config.lr``) and the head at ``config.lr``."""
    return [
        {"params": list(encoder.parameters()), "lr": config.encoder_lr or config.lr},
        {"params": list(head.parameters()), "lr": config.lr},
    ]


def train(
    config: TaskConfig,
    build: Callable[[], ModelT],
    fit: Callable[[ModelT, torch.Generator], list[float]],
) -> tuple[ModelT, list[float]]:
    """Build a model and fit it, reproducibly from ``config.seed``.

    ``build`` and ``fit`` run under :func:`seeded`; ``fit`` also gets a generator seeded with
    ``config.seed`` for batches, crops and flips, so runs that differ only in the encoder
    weights follow the same schedule.

    Args:
        config: Gives ``seed`` and ``device``.
        build: Makes the model; it is moved to ``config.device``.
        fit: Trains the model and returns the loss of every step.

    Returns:
        The trained model (eval mode) and the loss of every step.
    """
    generator = torch.Generator().manual_seed(config.seed)
    with seeded(config):
        model = build().to(torch.device(config.device))
        history = fit(model, generator)
    model.eval()
    return model, history


@contextlib.contextmanager
def seeded(config: TaskConfig) -> Iterator[None]:
    """Fork the global RNG (CPU and the task's CUDA device) and seed it with ``config.seed``.

    Weight initialisation and dropout inside the block are reproducible, and the caller's
    global RNG state is restored on exit.
    """
    device = torch.device(config.device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        yield
