"""Build data, model and Lightning Trainer from a :class:`PretrainConfig`, and run it.

Exact resumption: every random choice of a step is a function of the run seed and the number
of batches seen. The batch stream (:class:`StepBatchSampler`) enumerates the batches of the
subject-aware samplers epoch after epoch and can start at any batch; each item's view
augmentation draws from a generator seeded with ``(seed, batch, position)``; the model
reseeds the global RNG from ``(seed, batches seen, rank)`` at every step (masks, dropout).
Optimizer, scheduler, probe and counters are in the checkpoint. So a run interrupted at
step ``k`` and resumed with ``resume=True`` sees the same batches, views and masks as an
uninterrupted run.

Example:
    >>> from lightly_topo.methods.config import build_config
    >>> config = build_config({"method": "simclr", "out": "/tmp/run", "trainer": {"max_steps": 2}})
    >>> # result = pretrain(config)   # writes /tmp/run/{checkpoints,logs,encoder}
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from lightly_topo.data.errors import EmptyDatasetError
from lightly_topo.data.types import VolumeItem
from lightly_topo.methods.base import PretrainMethod
from lightly_topo.methods.callbacks import (
    AtomicCheckpointIO,
    CollapseMonitor,
    NonFiniteGuard,
    OnlineLinearProbe,
    ThroughputMonitor,
)
from lightly_topo.methods.config import ConfigError, PretrainConfig, to_dict

#: Lightning warnings that do not apply to these runs (the methods optimise manually and
#: checkpoint after the step on purpose; resumed runs reuse their checkpoint folder).
_QUIET = (
    ".*does not have many workers.*",
    ".*Total length of .* across ranks.*",
    ".*Using ModelCheckpoint with manual optimization.*",
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*overridden `on_after_batch_transfer`.*",
    ".*`weights_only` was not set.*",
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
    ".*The number of training batches .* is smaller than the logging interval.*",
)

#: Largest synthetic dataset (in voxels over all subjects and modalities) kept in memory.
_MEMORY_CACHE_VOXELS = 2**29


# ------------------------------------------------------------------------------ data sources
@dataclass
class SubjectTable:
    """What the samplers and the probe need to know about every dataset index.

    Attributes:
        dataset: The map-style dataset of :class:`~lightly_topo.data.VolumeItem`.
        modality_names: The modality vocabulary.
        subject_ids: Subject of every index.
        availability: Bool ``(N, M)``.
        labels: Subject-level labels of every index.
        spacing: Voxel spacing (mm) of the items, for the exported encoder's metadata.
        description: Where the data come from (for messages).
    """

    dataset: Any
    modality_names: tuple[str, ...]
    subject_ids: list[str]
    availability: np.ndarray
    labels: list[dict[str, Any]]
    spacing: tuple[float, float, float]
    description: str


class MemoryCachedDataset(Dataset[VolumeItem]):
    """Keeps the items of a dataset in memory after their first load (per process).

    Used for the synthetic subjects, whose generation costs far more than a training step.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self._items: dict[int, VolumeItem] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> VolumeItem:
        if index not in self._items:
            self._items[index] = self.dataset[index]
        return self._items[index]


_SYNTHETIC: dict[tuple[Any, ...], MemoryCachedDataset] = {}


def load_subjects(config: PretrainConfig) -> SubjectTable:
    """The dataset named by ``data.path`` (a folder or ``"synthetic"``).

    Raises:
        FileNotFoundError: The path does not exist.
        EmptyDatasetError: The folder holds no subject.
        ConfigError: Unknown modality names in ``data.modalities``.
    """
    data = config.data
    if data.path == "synthetic":
        from lightly_topo.data.synthetic import SyntheticBrains

        kwargs: dict[str, Any] = {"size": data.synthetic_size, "seed": config.trainer.seed}
        if data.modalities is not None:
            kwargs["modalities"] = tuple(data.modalities)
        try:
            synthetic = SyntheticBrains(data.synthetic_subjects, **kwargs)
        except ValueError as error:
            raise ConfigError(f"data (synthetic): {error}") from error
        names = tuple(synthetic.modality_names)
        key = (data.synthetic_subjects, data.synthetic_size, names, config.trainer.seed)
        voxels = data.synthetic_subjects * len(names) * data.synthetic_size**3
        if key in _SYNTHETIC:
            dataset: Any = _SYNTHETIC[key]
        else:
            dataset = MemoryCachedDataset(synthetic)
            if voxels <= _MEMORY_CACHE_VOXELS:
                _SYNTHETIC[key] = dataset
        n = len(synthetic)
        spacing = 220.0 / data.synthetic_size
        return SubjectTable(
            dataset=dataset,
            modality_names=names,
            subject_ids=[synthetic.subject_id(i) for i in range(n)],
            availability=np.ones((n, len(names)), dtype=bool),
            labels=[synthetic.subject_labels(i) for i in range(n)],
            spacing=(spacing, spacing, spacing),
            description=f"synthetic ({n} subjects of {data.synthetic_size}^3)",
        )
    path = Path(data.path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"data path {path} does not exist: pass a dataset folder (BraTS, Decathlon, BIDS, "
            "nnssl JSON or CSV manifest) or 'synthetic'."
        )
    from lightly_topo.data import MultiModalVolumeDataset, read_subjects

    if path.is_dir() and not any(path.iterdir()):
        raise EmptyDatasetError(
            f"data path {path} is an empty folder: no subjects to pretrain on. Point --data "
            "at a dataset folder (BraTS, Decathlon, BIDS, nnssl JSON or CSV manifest) or use "
            "'synthetic'."
        )
    subjects = read_subjects(path, layout=data.layout)
    if not subjects:
        raise EmptyDatasetError(
            f"data path {path} holds no subject: check the folder layout (see "
            "`lightly-topo summary PATH`) or pass data.layout explicitly."
        )
    real = MultiModalVolumeDataset(
        subjects,
        modality_names=data.modalities,
        cache_dir=data.cache_dir,
        spacing=data.spacing,
        crop_foreground=True,
    )
    names = tuple(real.modality_names)
    kept = real.subjects
    spacing_mm = (
        real.spacing if real.spacing is not None else _first_spacing(real) or (1.0, 1.0, 1.0)
    )
    return SubjectTable(
        dataset=real,
        modality_names=names,
        subject_ids=[s.subject_id for s in kept],
        availability=np.array([[m in s.images for m in names] for s in kept], dtype=bool),
        labels=[dict(s.labels) for s in kept],
        spacing=spacing_mm,
        description=f"{path} ({len(kept)} subjects)",
    )


def _first_spacing(dataset: Any) -> tuple[float, float, float] | None:
    try:
        affine = np.asarray(dataset[0]["affine"], dtype=np.float64)
    except Exception:
        return None
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    return (float(norms[0]), float(norms[1]), float(norms[2]))


def probe_classes(table: SubjectTable, key: str | None) -> tuple[str, list[str]] | None:
    """The label probed online and its classes, or ``None`` (no usable label).

    ``"auto"`` takes the first label whose values are categories (str, or int with at most
    20 values) with at least two classes.

    Raises:
        ConfigError: A named label that no subject has, or with fewer than two classes.
    """
    if key is None:
        return None
    keys = [key] if key != "auto" else list(dict.fromkeys(k for lab in table.labels for k in lab))
    for name in keys:
        values = [lab[name] for lab in table.labels if name in lab and lab[name] is not None]
        categorical = all(isinstance(v, str) for v in values) or (
            all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values)
            and len(set(values)) <= 20
        )
        classes = sorted({str(v) for v in values})
        if values and categorical and len(classes) >= 2:
            return name, classes
        if key != "auto":
            raise ConfigError(
                f"data.probe_label={key!r}: {'no subject has this label' if not values else 'it is not a categorical label with at least 2 classes'} "
                f"in {table.description}; set data.probe_label to null or to one of "
                f"{sorted({k for lab in table.labels for k in lab}) or 'none (no labels)'}."
            )
    return None


# ------------------------------------------------------------------------------ batches
def _seed(*values: int) -> int:
    digest = hashlib.blake2b(repr(values).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class StepBatchSampler(Sampler[list[Any]]):
    """Endless stream of batches from an epoch-based batch sampler, startable at any batch.

    Epoch ``e`` is ``sampler.set_epoch(e)`` followed by its batches; batch number ``t``
    (counted over epochs) is yielded as ``[(t, position, key), ...]``, so the dataset can
    seed each item's augmentation with ``(t, position)``. ``start`` skips the first batches
    without loading anything (for resumed runs).

    Args:
        sampler: A batch sampler with ``set_epoch`` (e.g. :class:`~lightly_topo.samplers.SubjectBatchSampler`).
        start: Number of batches to skip.
    """

    def __init__(self, sampler: Any, start: int = 0) -> None:
        self.sampler = sampler
        self.start = int(start)

    def __iter__(self) -> Iterator[list[Any]]:
        batch_number = 0
        epoch = 0
        while True:
            self.sampler.set_epoch(epoch)
            produced = False
            for batch in self.sampler:
                produced = True
                if batch_number >= self.start:
                    yield [(batch_number, position, key) for position, key in enumerate(batch)]
                batch_number += 1
            if not produced:
                raise RuntimeError("the batch sampler yielded no batch in an epoch")
            epoch += 1


class ViewDataset(Dataset[dict[str, Any]]):
    """Loads an item and makes the method's views with a per-item seeded generator.

    Keys are ``(batch_number, position, key)`` from :class:`StepBatchSampler`; ``key`` is a
    dataset index, or ``(index, (mod_a, mod_b))`` from the cross-subject sampler.

    Args:
        table: The data.
        transform: ``transform(item, generator=...)`` to a list of views, or ``None`` to
            return the raw item (device augmentation).
        kind: The method's view kind.
        seed: The run seed.
        probe: ``(label, classes)`` of the online probe, or ``None``.
        with_foreground: Keep each view's brain ``foreground`` (see
            :class:`~lightly_topo.transforms.View`); dropped otherwise.
    """

    def __init__(
        self,
        table: SubjectTable,
        transform: Callable[..., Any] | None,
        kind: str,
        seed: int,
        probe: tuple[str, list[str]] | None,
        with_foreground: bool = False,
    ) -> None:
        self.table = table
        self.transform = transform
        self.kind = kind
        self.seed = seed
        self.probe = probe
        self.with_foreground = with_foreground

    def __len__(self) -> int:
        return len(self.table.subject_ids)

    def __getitem__(self, key: tuple[int, int, Any]) -> dict[str, Any]:
        batch_number, position, index = key
        pair: tuple[str, str] | None = None
        if isinstance(index, tuple):
            index, pair = index
        item = self.table.dataset[index]
        if pair is not None:
            item = restrict_modalities(item, pair)
        target = -1
        if self.probe is not None:
            name, classes = self.probe
            value = self.table.labels[index].get(name)
            if value is not None and str(value) in classes:
                target = classes.index(str(value))
        out: dict[str, Any] = {
            "subject_id": str(item["subject_id"]),
            "probe_target": target,
            "seed": _seed(self.seed, batch_number, position),
        }
        if self.transform is None:
            out["item"] = item
            return out
        generator = torch.Generator().manual_seed(out["seed"])
        views = self.transform(item, generator=generator)
        if not self.with_foreground:
            for view in views:
                view.pop("foreground", None)
        out["views"] = views
        return out


def restrict_modalities(item: VolumeItem, pair: tuple[str, str]) -> VolumeItem:
    """``item`` with only the two modalities of ``pair`` available."""
    names = tuple(item["modality_names"])
    mask = torch.tensor([n in pair for n in names], dtype=torch.bool) & item["mask"]
    restricted = dict(item)
    restricted["images"] = {k: v for k, v in item["images"].items() if k in pair}
    restricted["mask"] = mask
    return restricted  # type: ignore[return-value]


def collate_pretrain(kind: str) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """Collate function of :class:`ViewDataset` samples for a method's view kind.

    Batches: ``subject_id``, ``probe_target`` int64 ``(B,)``, ``seeds`` int64 ``(B,)`` and

    * ``"simclr"``, ``"byol"``, ``"mae"``: ``views``, a list of dicts ``image``
      ``(B, M, d, h, w)``, ``mask`` ``(B, M)``, ``grid`` ``(B, 3, d, h, w)`` and optionally
      ``foreground`` bool ``(B, 1, d, h, w)``;
    * ``"pair"``: ``image_a``, ``image_b`` ``(B, 1, d, h, w)`` (co-registered), ``grid``
      and optionally ``foreground``;
    * device augmentation: ``raw`` with ``image`` ``(B, M, D, H, W)`` and ``mask``.
    """

    def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {
            "subject_id": [s["subject_id"] for s in samples],
            "probe_target": torch.tensor([s["probe_target"] for s in samples], dtype=torch.long),
            "seeds": torch.tensor([s["seed"] for s in samples], dtype=torch.long),
        }
        if "item" in samples[0]:
            from lightly_topo.data import collate_subjects

            raw = collate_subjects([s["item"] for s in samples])
            batch["raw"] = {"image": raw["image"], "mask": raw["mask"]}
            return batch
        n_views = len(samples[0]["views"])
        views = []
        for v in range(n_views):
            group = [s["views"][v] for s in samples]
            view = {
                "image": torch.stack([g["image"] for g in group]),
                "mask": torch.stack([g["mask"] for g in group]),
                "grid": torch.stack([g["grid"] for g in group]),
            }
            if "foreground" in group[0]:
                view["foreground"] = torch.stack([g["foreground"] for g in group])
            views.append(view)
        if kind == "pair":
            return {**batch, **pair_batch(views[0], views[1])}
        batch["views"] = views
        return batch

    return collate


def pair_batch(view_a: dict[str, Tensor], view_b: dict[str, Tensor]) -> dict[str, Tensor]:
    """Single-channel ``image_a``/``image_b`` from two one-hot-masked co-registered views."""
    out = {
        "image_a": select_channel(view_a["image"], view_a["mask"]),
        "image_b": select_channel(view_b["image"], view_b["mask"]),
        "grid": view_a["grid"],
    }
    if "foreground" in view_a:
        out["foreground"] = view_a["foreground"]
    return out


def select_channel(image: Tensor, one_hot: Tensor) -> Tensor:
    """The one available channel of every sample: ``(B, M, ...)`` to ``(B, 1, ...)``."""
    index = one_hot.float().argmax(dim=1)
    rows = torch.arange(image.shape[0], device=image.device)
    return image[rows, index].unsqueeze(1)


# ------------------------------------------------------------------------------ data module
class PretrainData(pl.LightningDataModule):
    """The training data of a run: sampler, views and loader, built per rank.

    Args:
        config: The run's configuration.
        table: The data.
        kind: The method's view kind.
        needs_pairs: The method needs two modalities per subject.
        probe: ``(label, classes)`` or ``None``.
        start_batch: Batches to skip (resumed runs).
        with_foreground: Add the views' brain foreground (topology methods).
    """

    def __init__(
        self,
        config: PretrainConfig,
        table: SubjectTable,
        kind: str,
        needs_pairs: bool,
        probe: tuple[str, list[str]] | None,
        start_batch: int = 0,
        with_foreground: bool = False,
    ) -> None:
        super().__init__()
        self.with_foreground = with_foreground
        self.config = config
        self.table = table
        self.kind = kind
        self.needs_pairs = needs_pairs
        self.probe = probe
        self.start_batch = start_batch

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def batch_sampler(self) -> Any:
        from lightly_topo.samplers import CrossSubjectBatchSampler, SubjectBatchSampler

        world, rank = self._rank()
        data = self.config.data
        if self.kind == "pair":
            return CrossSubjectBatchSampler(
                self.table.subject_ids,
                self.table.availability,
                self.table.modality_names,
                batch_size=data.batch_size,
                min_subjects=2,
                seed=self.config.trainer.seed,
                drop_last=False,
                num_replicas=world,
                rank=rank,
            )
        return SubjectBatchSampler(
            self.table.subject_ids,
            batch_size=data.batch_size,
            seed=self.config.trainer.seed,
            drop_last=len(set(self.table.subject_ids)) >= 2 * data.batch_size * world,
            num_replicas=world,
            rank=rank,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        transform = (
            None if self.config.trainer.device_augment else view_transform(self.kind, self.config)
        )
        dataset = ViewDataset(
            self.table,
            transform,
            self.kind,
            self.config.trainer.seed,
            self.probe,
            with_foreground=self.with_foreground,
        )
        sampler = StepBatchSampler(self.batch_sampler(), start=self.start_batch)
        workers = self.config.data.num_workers
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate_pretrain(self.kind),
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )


def view_transform(kind: str, config: PretrainConfig) -> Callable[..., Any]:
    """The per-item view transform of a view kind at ``data.crop_size``."""
    from lightly_topo import transforms

    size = config.data.crop_size
    if kind == "simclr":
        return transforms.SimCLRTransform3D(input_size=size)
    if kind == "byol":
        return transforms.BYOLTransform3D(input_size=size)
    if kind == "mae":
        return transforms.MAETransform3D(input_size=size)
    if kind == "pair":
        return transforms.TopoTransform3D(input_size=size, num_modalities=2)
    raise ConfigError(f"unknown view kind {kind!r}")


# ------------------------------------------------------------------------------ checks
def check_data_for_method(table: SubjectTable, method: type[PretrainMethod], name: str) -> None:
    """Raise :class:`ConfigError` when the data cannot feed the method.

    A method needing two co-registered modalities given single-modality data (or subjects
    that never have two) gets a message saying which methods work instead.
    """
    if method.needs_pairs:
        pairs = table.availability.sum(axis=1) >= 2
        if len(table.modality_names) < 2 or not pairs.any():
            raise ConfigError(
                f"method {name!r} needs two co-registered modalities per subject, but "
                f"{table.description} has {'only modality ' + table.modality_names[0] if len(table.modality_names) == 1 else 'no subject with two of ' + str(table.modality_names)}. "
                "Use a multi-modal dataset, or a single-modality method (simclr, byol, mae, "
                "simclr+topo, byol+topo)."
            )
        if int(pairs.sum()) < 2:
            raise ConfigError(
                f"method {name!r} compares subjects with each other and needs at least 2 "
                f"subjects with two modalities; {table.description} has {int(pairs.sum())}."
            )
    if len(set(table.subject_ids)) < 2:
        raise ConfigError(
            f"{table.description} holds a single subject; self-supervised pretraining needs "
            "at least 2 distinct subjects per batch."
        )


def resolve_method(name: str) -> type[PretrainMethod]:
    """The method class registered as ``name``.

    Raises:
        ConfigError: Unknown method (with close matches and the list).
    """
    from lightly_topo import registry

    try:
        cls = registry.get("method", name)
    except LookupError as error:
        raise ConfigError(f"{error} Run `lightly-topo list` to see every method.") from error
    if not (isinstance(cls, type) and issubclass(cls, PretrainMethod)):
        raise ConfigError(f"registered method {name!r} is not a PretrainMethod: {cls!r}")
    return cls


def check_backbone(name: str) -> None:
    """Raise :class:`ConfigError` for an unknown backbone name (with close matches)."""
    from lightly_topo import registry

    try:
        registry.entry("backbone", name)
    except LookupError as error:
        raise ConfigError(f"{error} Run `lightly-topo list` to see every backbone.") from error


# ------------------------------------------------------------------------------ running
@dataclass
class PretrainResult:
    """What :func:`pretrain` produced.

    Attributes:
        out: The output folder.
        last_checkpoint: The final Lightning checkpoint.
        encoder_path: The exported encoder (:func:`lightly_topo.checkpoint.save_pretrained`).
        losses: ``(step, loss)`` of every optimizer step run in this call.
        nonfinite_skipped: Steps skipped for a non-finite loss (whole run).
        step_times: ``(step_s, data_wait_s)`` of every step of this call.
        module: The trained Lightning module.
    """

    out: Path
    last_checkpoint: Path
    encoder_path: Path | None
    losses: list[tuple[int, float]] = field(default_factory=list)
    nonfinite_skipped: int = 0
    step_times: list[tuple[float, float]] = field(default_factory=list)
    module: PretrainMethod | None = None


class LossHistory(pl.Callback):
    """Records ``(global_step, loss)`` after every successful optimizer step."""

    def __init__(self) -> None:
        self.losses: list[tuple[int, float]] = []

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, Tensor):
            self.losses.append((int(trainer.global_step), float(loss)))


def resolve_precision(config: PretrainConfig) -> str:
    """``"auto"``: bf16 autocast on a CUDA GPU, full precision elsewhere."""
    precision = config.trainer.precision
    if precision != "auto":
        return precision
    on_gpu = torch.cuda.is_available() and config.trainer.accelerator in ("auto", "gpu", "cuda")
    return "bf16-mixed" if on_gpu else "32-true"


def checkpoint_state(path: Path) -> dict[str, Any]:
    """The ``lightly_topo`` section of a Lightning checkpoint (method, batches seen, ...)."""
    from lightly_topo.checkpoint import CorruptCheckpointError

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CorruptCheckpointError(
            f"cannot read checkpoint {path}: {error}; delete it or resume from another one.",
            path,
        ) from error
    return dict(checkpoint.get("lightly_topo", {}))


def build_trainer(
    config: PretrainConfig,
    out: Path,
    callbacks: Sequence[pl.Callback],
    logger: bool = True,
) -> pl.Trainer:
    """The Lightning Trainer of a run (loggers, atomic checkpoints, progress bar, DDP)."""
    from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    trainer_config = config.trainer
    all_callbacks: list[pl.Callback] = list(callbacks)
    all_callbacks.append(
        ModelCheckpoint(
            dirpath=out / "checkpoints",
            filename="step-{step}",
            every_n_train_steps=trainer_config.checkpoint_every,
            save_top_k=-1,
            save_last=False,
            auto_insert_metric_name=False,
        )
    )
    if trainer_config.progress:
        all_callbacks.append(RichProgressBar(leave=True))
    loggers: list[Any] | bool = False
    if logger:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loggers = [
                CSVLogger(out / "logs", name="csv"),
                TensorBoardLogger(out / "logs", name="tensorboard", default_hp_metric=False),
            ]
    strategy: Any = trainer_config.strategy
    if strategy in ("ddp", "ddp_spawn") and trainer_config.accelerator == "cpu":
        from pytorch_lightning.strategies import DDPStrategy

        strategy = DDPStrategy(
            process_group_backend="gloo",
            start_method="spawn" if strategy == "ddp_spawn" else "popen",
        )
    return pl.Trainer(
        accelerator=trainer_config.accelerator,
        devices=trainer_config.devices,
        num_nodes=trainer_config.num_nodes,
        strategy=strategy,
        precision=resolve_precision(config),  # type: ignore[arg-type]
        max_steps=trainer_config.max_steps,
        max_epochs=-1,
        logger=loggers,
        log_every_n_steps=trainer_config.log_every,
        callbacks=all_callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=trainer_config.progress,
        enable_model_summary=False,
        enable_checkpointing=True,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=str(out),
        deterministic=False,
    )


def build(
    config: PretrainConfig, table: SubjectTable | None = None, start_batch: int = 0
) -> tuple[PretrainMethod, PretrainData, SubjectTable, tuple[str, list[str]] | None]:
    """Method module and data module of a configuration (no Trainer).

    Raises:
        ConfigError: Unknown method or backbone, or data that cannot feed the method.
    """
    method_cls = resolve_method(config.method)
    check_backbone(config.model.backbone)
    if config.model.backbone not in method_cls.backbones:
        raise ConfigError(
            f"method {config.method!r} does not support backbone {config.model.backbone!r}; "
            f"use one of: {', '.join(method_cls.backbones)}."
        )
    table = table if table is not None else load_subjects(config)
    check_data_for_method(table, method_cls, config.method)
    if config.trainer.memory_check:
        from lightly_topo.methods.memory import check_memory

        check_memory(
            config,
            method_cls,
            len(table.modality_names),
            _device(config),
            bf16=resolve_precision(config).startswith("bf16"),
        )
    probe = probe_classes(table, config.data.probe_label)
    pl.seed_everything(config.trainer.seed, workers=True, verbose=False)
    module = method_cls(config, table.modality_names)
    if config.trainer.device_augment:
        module.device_augment = device_augmenter(method_cls.view_kind, config)
    data = PretrainData(
        config,
        table,
        method_cls.view_kind,
        method_cls.needs_pairs,
        probe,
        start_batch,
        with_foreground=method_cls.uses_foreground,
    )
    return module, data, table, probe


def _device(config: PretrainConfig) -> str:
    """``"cuda"`` where the run trains on a GPU, else ``"cpu"``."""
    accelerator = config.trainer.accelerator
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def device_augmenter(kind: str, config: PretrainConfig) -> Any:
    """Batched device augmentation producing the views of a view kind."""
    from lightly_topo.methods.device_views import DeviceViews

    return DeviceViews(view_transform(kind, config), kind)


def pretrain(
    config: PretrainConfig,
    resume: bool = False,
    extra_callbacks: Sequence[pl.Callback] = (),
    table: SubjectTable | None = None,
    logger: bool = True,
    export: bool = True,
) -> PretrainResult:
    """Run (or resume) the pretraining described by ``config``.

    Writes ``out/config.yaml``, checkpoints every ``trainer.checkpoint_every`` steps and at
    the end (``out/checkpoints/step-N.ckpt``, ``out/checkpoints/last.ckpt``, atomically),
    CSV and TensorBoard logs (``out/logs/{csv,tensorboard}/version_N``, a new version per
    call, so a resumed run keeps the logs of its first part) and the encoder
    (``out/encoder/encoder.pt``, :func:`lightly_topo.checkpoint.save_pretrained`).

    Args:
        config: The run's configuration.
        resume: Continue from ``out/checkpoints/last.ckpt`` exactly.
        extra_callbacks: More Lightning callbacks.
        table: Pre-loaded data (default: from ``config.data``).
        logger: Write CSV and TensorBoard logs.
        export: Export the encoder at the end.

    Raises:
        ConfigError: Bad configuration or data unfit for the method.
        FileNotFoundError: ``resume`` without a checkpoint, or a missing data path.
        NonFiniteLossError: Too many non-finite losses in a row.
    """
    import yaml

    out = Path(config.out).expanduser()
    last = out / "checkpoints" / "last.ckpt"
    ckpt_path: Path | None = None
    start_batch = 0
    if resume:
        if not last.is_file():
            raise FileNotFoundError(
                f"--resume: no checkpoint {last} to resume from; run without --resume first "
                "(or pass the --out folder of the interrupted run)."
            )
        state = checkpoint_state(last)
        if state.get("method") not in (None, config.method):
            raise ConfigError(
                f"--resume: {last} was written by method {state.get('method')!r}, not "
                f"{config.method!r}; use the same method or another --out folder."
            )
        start_batch = int(state.get("batches_seen", 0))
        ckpt_path = last
    module, data, table, probe = build(config, table=table, start_batch=start_batch)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))

    history = LossHistory()
    throughput = ThroughputMonitor()
    callbacks: list[pl.Callback] = [
        NonFiniteGuard(config.trainer.max_nonfinite),
        CollapseMonitor(config.trainer.log_every),
        throughput,
        history,
    ]
    if probe is not None:
        callbacks.append(OnlineLinearProbe(len(probe[1]), probe[1]))
    callbacks.extend(extra_callbacks)
    trainer = build_trainer(config, out, callbacks, logger=logger)
    with warnings.catch_warnings():
        for message in _QUIET:
            warnings.filterwarnings("ignore", message=message)
        trainer.fit(module, datamodule=data, ckpt_path=str(ckpt_path) if ckpt_path else None)
        trainer.save_checkpoint(last)
    encoder_path: Path | None = None
    if export and trainer.is_global_zero:
        encoder_path = export_encoder(module, table, config, out / "encoder" / "encoder.pt")
    return PretrainResult(
        out=out,
        last_checkpoint=last,
        encoder_path=encoder_path,
        losses=history.losses,
        nonfinite_skipped=module.nonfinite_total,
        step_times=throughput.history,
        module=module,
    )


def export_encoder(
    module: PretrainMethod, table: SubjectTable, config: PretrainConfig, path: Path
) -> Path:
    """Save the method's encoder with :func:`lightly_topo.checkpoint.save_pretrained`."""
    from lightly_topo.checkpoint import save_pretrained
    from lightly_topo.models import MultiModalEncoder

    encoder = module.encoder
    mode = config.model.modality_handling if not module.needs_pairs else "shared"
    if getattr(encoder, "in_channels", 1) == 1:
        mode = "shared"
    wrapped = MultiModalEncoder(encoder, mode, len(table.modality_names))  # type: ignore[arg-type]
    return save_pretrained(
        wrapped,
        path,
        method=config.method,
        modalities=list(table.modality_names),
        patch_size=config.data.crop_size,
        spacing=list(table.spacing),
        normalization="zscore_foreground",
        training_steps=int(module.global_step),
        extra={"config": to_dict(config), "nonfinite_skipped": module.nonfinite_total},
    )
