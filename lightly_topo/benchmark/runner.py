"""The baseline-comparison benchmark: pretrain every method, run one downstream protocol each.

For every seed ``s`` and method ``m`` (``scratch`` included):

1. **Split.** The downstream subjects are split once per seed into train and test subjects
   (stratified by the classification label), shared by every method and task of that seed,
   so methods are paired over seeds.
2. **Pretrain** ``m`` (except ``scratch``) with seed ``s`` on subjects no downstream test
   split uses: separately generated synthetic subjects, the same for every method and seed
   (default), or, with real data and ``pretrain_on="train-subjects"``, only the training
   subjects of seed ``s``'s split.
3. **Segmentation + missing modalities**: one segmentation model is fine-tuned with every
   modality (:func:`~lightly_topo.eval.run_missing_modality`) and tested with each non-empty
   modality subset kept; its full-set score is the segmentation result.
4. **Classification + low labels**: the classifier (linear probe by default) is trained on
   growing fractions of the labelled training subjects
   (:func:`~lightly_topo.eval.run_low_label`); the fraction 1.0 score is the classification
   result.

``scratch`` runs steps 3-4 from a fresh encoder of the same architecture, initialised with
seed ``s`` (:func:`~lightly_topo.eval.tasks.scratch_encoder_like`).

Resumable: each pretraining and each downstream run writes its JSON record atomically into
``OUT/runs/``; a re-run skips records that exist for the same settings (a crash loses at
most the run in progress). Records carry a fingerprint of the settings; changed settings
recompute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightly_topo.benchmark.presets import Preset, PresetError
from lightly_topo.benchmark.provenance import provenance

logger = logging.getLogger("lightly_topo.benchmark")

#: Seed of the synthetic downstream subjects (pretraining subjects use the run seeds 0, 1, ...,
#: with another subject-id prefix, so the two sets never share a subject).
DOWNSTREAM_DATA_SEED = 104_729

#: Seed of the synthetic pretraining subjects, shared by every method and run seed (the run
#: seed changes initialisation, batch order, views and masks, not the pretraining data).
PRETRAIN_DATA_SEED = 0

#: Record file names of the two downstream runs of a (method, seed).
SEGMENTATION = "segmentation"
CLASSIFICATION = "classification"


class BenchmarkError(ValueError):
    """Data or settings the benchmark cannot run on (the message says what to change)."""


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` produced.

    Attributes:
        out: The output folder.
        records: Every run record (pretraining and downstream), as written in ``OUT/runs``.
        files: The report files written (Markdown, CSV, JSON, PNG).
        wall_s: Wall time of this call.
        reused: Number of records found on disk and reused.
    """

    out: Path
    records: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)
    wall_s: float = 0.0
    reused: int = 0


# ------------------------------------------------------------------------------ records
def write_json_atomic(record: Any, path: Path) -> Path:
    """Write ``record`` as strict JSON to ``path`` atomically (temp file + rename)."""
    from lightly_topo.eval.tasks import _jsonable

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_jsonable(record), indent=1, allow_nan=False))
    os.replace(tmp, path)
    return path


def read_record(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The record at ``path`` if it exists, parses and was made with the same settings."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("ignoring unreadable record %s (%s); it is recomputed", path, error)
        return None
    if not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
        logger.info("record %s was made with other settings; it is recomputed", path)
        return None
    return record


def settings_fingerprint(preset: Preset, data: str | None, pretrain_on: str) -> str:
    """Hash of every setting that changes a run's result (not the method list, nor the seeds
    unless they are the folds of a k-fold split)."""
    values = preset.to_dict()
    for key in ("name", "methods", "description"):
        values.pop(key)
    if preset.split != "kfold":
        values.pop("seeds")
    values["data"] = data
    values["pretrain_on"] = pretrain_on
    text = json.dumps(values, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_name(kind: str, method: str, seed: int) -> str:
    """File name of a record, e.g. ``pretrain__simclr_topo__s0.json``."""
    return f"{kind}__{method.replace('+', '_')}__s{seed}.json"


# ------------------------------------------------------------------------------ data
class CachedDataset:
    """Keeps every item after its first read; forwards ``modality_names``.

    With ``whole_lesion``, label maps become binary (every label above 0 is 1).
    """

    def __init__(self, dataset: Any, whole_lesion: bool = False) -> None:
        self.dataset = dataset
        self.whole_lesion = whole_lesion
        self._items: dict[int, Any] = {}

    @property
    def modality_names(self) -> tuple[str, ...]:
        names = getattr(self.dataset, "modality_names", None)
        if names is None:
            names = self[0]["modality_names"]
        return tuple(names)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        if index not in self._items:
            item = self.dataset[index]
            if self.whole_lesion and item.get("label_map") is not None:
                item = dict(item)
                item["label_map"] = (torch.as_tensor(item["label_map"]) > 0).long()
            self._items[index] = item
        return self._items[index]


def downstream_dataset(preset: Preset, data: str | None) -> CachedDataset:
    """The downstream subjects: synthetic (``data`` None) or a real dataset folder.

    Real subjects without the classification label ``preset.cls_label`` are left out of
    every task (logged), so one subject split serves all tasks.

    Raises:
        FileNotFoundError: ``data`` does not exist.
        BenchmarkError: The folder holds no subject.
    """
    if data is None:
        from lightly_topo.data.synthetic import SyntheticBrains

        return CachedDataset(
            SyntheticBrains(
                preset.downstream_subjects,
                size=preset.synthetic_size,
                modalities=preset.modalities,
                seed=DOWNSTREAM_DATA_SEED,
                id_prefix="eval",
            ),
            whole_lesion=preset.seg_target == "whole",
        )
    from lightly_topo.data import MultiModalVolumeDataset, read_subjects

    path = Path(data).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"--data {path} does not exist: pass a dataset folder (e.g. "
            "../shared/data/tcga_lgg_buda2019) or leave --data out for the synthetic default."
        )
    subjects = read_subjects(path)
    unlabelled = [s.subject_id for s in subjects if _missing(s.labels.get(preset.cls_label))]
    if unlabelled and len(unlabelled) < len(subjects):
        logger.warning(
            "--data %s: %d subjects have no %r label and are left out of the benchmark (%s)",
            path,
            len(unlabelled),
            preset.cls_label,
            ", ".join(unlabelled[:5]),
        )
        subjects = [s for s in subjects if not _missing(s.labels.get(preset.cls_label))]
    if len(subjects) < 4:
        raise BenchmarkError(
            f"--data {path} holds {len(subjects)} subjects; the benchmark needs at least 4 "
            "(train and test subjects per seed)."
        )
    return CachedDataset(
        MultiModalVolumeDataset(subjects, spacing=preset.real_spacing, crop_foreground=True),
        whole_lesion=preset.seg_target == "whole",
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def subject_labels(dataset: CachedDataset, key: str) -> list[Any] | None:
    """The label ``key`` of every subject, or ``None`` where a subject lacks it."""
    inner = dataset.dataset
    values = []
    for index in range(len(dataset)):
        if hasattr(inner, "subject_labels"):
            labels = inner.subject_labels(index)
        elif hasattr(inner, "subjects"):
            labels = inner.subjects[index].labels
        else:
            labels = dataset[index]["labels"]
        value = labels.get(key)
        if _missing(value):
            return None
        values.append(value)
    return values


def subject_ids(dataset: CachedDataset) -> list[str]:
    inner = dataset.dataset
    if hasattr(inner, "subject_id"):
        return [inner.subject_id(i) for i in range(len(dataset))]
    if hasattr(inner, "subjects"):
        return [s.subject_id for s in inner.subjects]
    return [str(dataset[i]["subject_id"]) for i in range(len(dataset))]


def check_tasks(dataset: CachedDataset, preset: Preset, data: str | None) -> None:
    """Raise :class:`BenchmarkError` where the data lack what a task needs.

    Segmentation needs a label map for every subject; classification needs the subject
    label ``cls_label`` for every subject, with at least two classes.
    """
    where = "the synthetic data" if data is None else f"--data {data}"
    missing = [
        str(dataset[i]["subject_id"])
        for i in range(len(dataset))
        if dataset[i]["label_map"] is None
    ]
    if missing:
        raise BenchmarkError(
            f"{where}: segmentation needs a label map for every subject; {len(missing)} have "
            f"none (e.g. {missing[:3]}); use a dataset with label maps (BraTS, LGG, MS)."
        )
    labels = subject_labels(dataset, preset.cls_label)
    if labels is None or len({str(v) for v in labels}) < 2:
        raise BenchmarkError(
            f"{where}: classification needs the subject label {preset.cls_label!r} for every "
            "subject, with at least 2 classes; pass --set cls_label=NAME with a label every "
            "subject has (LGG: e.g. 'grade' needs rows in data.csv for every case)."
        )


def seed_splits(
    dataset: CachedDataset, preset: Preset, where: str = "the downstream subjects"
) -> dict[int, Any]:
    """The train/test split of every seed, stratified by the classification label.

    With ``preset.split == "kfold"`` seed ``preset.seeds[i]`` gets fold ``i`` of one k-fold
    cross-validation over all seeds (shuffled with the first seed).

    Raises:
        BenchmarkError: The subjects cannot be split (too few per class or fold); the
            message names ``where`` (the data folder).
    """
    from lightly_topo.eval.splits import kfold_subjects, train_test_split_subjects

    labels = subject_labels(dataset, preset.cls_label)
    strata = None if labels is None else [str(v) for v in labels]
    ids = subject_ids(dataset)
    seed = preset.seeds[0]
    try:
        if preset.split == "kfold":
            folds = kfold_subjects(ids, len(preset.seeds), strata, seed=seed)
            return dict(zip(preset.seeds, folds))
        splits = {}
        for seed in preset.seeds:
            splits[seed] = train_test_split_subjects(
                ids, strata, test_fraction=preset.test_fraction, seed=seed
            )
        return splits
    except ValueError as error:
        raise BenchmarkError(f"cannot split {where} (seed {seed}): {error}") from error


def seed_split(dataset: CachedDataset, preset: Preset, seed: int) -> Any:
    """The train/test split of seed ``seed`` (see :func:`seed_splits`)."""
    return seed_splits(dataset, preset)[seed]


# ------------------------------------------------------------------------------ devices
def resolve_device(preset: Preset) -> str:
    """``"cuda"`` or ``"cpu"``; ``"cuda"`` without a GPU raises :class:`BenchmarkError`."""
    if preset.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preset.device == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("device 'cuda' requested but torch sees no CUDA GPU; use cpu or auto")
    return preset.device


# ------------------------------------------------------------------------------ pretraining
def pretrain_layer(
    preset: Preset,
    method: str,
    seed: int,
    out: Path,
    modalities: Sequence[str],
    device: str,
) -> dict[str, Any]:
    """The :func:`~lightly_topo.methods.config.build_config` layer of one pretraining."""
    return {
        "method": method,
        "out": str(out),
        "model": {
            "backbone": preset.backbone,
            "backbone_kwargs": dict(preset.backbone_kwargs),
            "hidden_dim": 128,
            "projection_dim": 64,
        },
        "data": {
            "path": "synthetic",
            "synthetic_subjects": preset.pretrain_subjects,
            "synthetic_size": preset.synthetic_size,
            "crop_size": preset.crop_size,
            "batch_size": preset.pretrain_batch_size,
            "modalities": list(modalities),
            "probe_label": None,
        },
        "loss": {"mask_patch": preset.mask_patch, "decoder_dim": 32, "decoder_depth": 1},
        "topo": {"level": preset.topo_level},
        "optim": {"lr": preset.pretrain_lr, "warmup_steps": 0},
        "trainer": {
            "max_steps": preset.pretrain_steps,
            "seed": seed,
            "accelerator": "gpu" if device == "cuda" else "cpu",
            "devices": 1,
            "checkpoint_every": preset.pretrain_steps,
            "log_every": max(1, preset.pretrain_steps),
            "progress": False,
            "device_augment": preset.device_augment,
        },
    }


def restrict_table(table: Any, keep: set[str]) -> Any:
    """A :class:`~lightly_topo.methods.train.SubjectTable` holding only subjects in ``keep``."""
    from torch.utils.data import Subset

    from lightly_topo.methods.train import SubjectTable

    index = [i for i, s in enumerate(table.subject_ids) if s in keep]
    return SubjectTable(
        dataset=Subset(table.dataset, index),
        modality_names=table.modality_names,
        subject_ids=[table.subject_ids[i] for i in index],
        availability=table.availability[index],
        labels=[table.labels[i] for i in index],
        spacing=table.spacing,
        description=f"{table.description}, {len(index)} training subjects",
    )


def run_pretrain(
    preset: Preset,
    method: str,
    seed: int,
    out: Path,
    modalities: Sequence[str],
    device: str,
    real: tuple[str, set[str]] | None,
) -> dict[str, Any]:
    """Pretrain one (method, seed); returns the record (``status`` ``ok`` or ``failed``)."""
    from lightly_topo.methods import NonFiniteLossError, build_config
    from lightly_topo.methods.train import load_subjects, pretrain

    run_dir = out / "pretrain" / f"{method.replace('+', '_')}_s{seed}"
    layer = pretrain_layer(preset, method, seed, run_dir, modalities, device)
    if real is None:
        described = (
            f"{preset.pretrain_subjects} synthetic subjects of {preset.synthetic_size}^3, "
            "disjoint from the downstream subjects"
        )
        data_layer = {**layer, "trainer": {**layer["trainer"], "seed": PRETRAIN_DATA_SEED}}
        table = load_subjects(build_config(data_layer))
    else:
        path, train_subjects = real
        layer["data"] = {
            **layer["data"],
            "path": path,
            "spacing": preset.real_spacing,
            "modalities": None,
        }
        # Real volumes differ in shape: the views are made per item, not batched raw.
        layer["trainer"] = {**layer["trainer"], "device_augment": False}
        config = build_config(layer)
        table = restrict_table(load_subjects(config), train_subjects)
        described = (
            f"the {len(table.subject_ids)} training subjects of seed {seed}'s split of {path}"
        )
    config = build_config(layer)
    start, cpu = time.perf_counter(), time.process_time()
    record: dict[str, Any] = {"kind": "pretrain", "method": method, "seed": seed}
    try:
        with _quiet_lightning():
            result = pretrain(config, table=table, logger=False)
    except NonFiniteLossError as error:
        logger.warning("pretraining %s (seed %d) failed: %s", method, seed, error)
        record.update(status="failed", error=str(error))
        return record
    losses = [loss for _, loss in result.losses]
    record.update(
        status="ok",
        encoder=str(Path(result.encoder_path or "").relative_to(out)),
        steps=len(losses),
        final_loss=losses[-1] if losses else None,
        losses=losses,
        nonfinite_skipped=result.nonfinite_skipped,
        pretrain_data=described,
        wall_s=time.perf_counter() - start,
        cpu_s=time.process_time() - cpu,
        config=layer,
    )
    return record


class _quiet_lightning:
    """Silence Lightning's banner and warnings during a pretraining."""

    names = ("pytorch_lightning", "lightning.pytorch", "lightning.fabric")

    def __enter__(self) -> None:
        self.levels = [logging.getLogger(n).level for n in self.names]
        for name in self.names:
            logging.getLogger(name).setLevel(logging.ERROR)
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: Any) -> None:
        self.warnings.__exit__(*exc)
        for name, level in zip(self.names, self.levels):
            logging.getLogger(name).setLevel(level)


# ------------------------------------------------------------------------------ downstream
def scratch_encoder(preset: Preset, modalities: Sequence[str], seed: int) -> nn.Module:
    """A fresh shared-mode encoder of the benchmark's architecture, initialised with ``seed``."""
    from lightly_topo.eval.tasks import scratch_encoder_like
    from lightly_topo.models import MultiModalEncoder, build_backbone

    backbone = build_backbone(preset.backbone, in_channels=1, **dict(preset.backbone_kwargs))
    encoder = MultiModalEncoder(backbone, mode="shared", num_modalities=len(modalities))
    setattr(encoder, "modality_names", tuple(modalities))  # noqa: B010
    return scratch_encoder_like(encoder, seed)


def task_configs(preset: Preset, seed: int, device: str, real: bool) -> tuple[Any, Any]:
    """The segmentation and classification configs of seed ``seed``."""
    from lightly_topo.eval.classification import ClassificationConfig
    from lightly_topo.eval.segmentation import SegmentationConfig

    seg = SegmentationConfig(
        seed=seed,
        steps=preset.seg_steps,
        batch_size=preset.seg_batch_size,
        lr=preset.seg_lr,
        test_fraction=preset.test_fraction,
        device=device,
        patch_size=(preset.crop_size,) * 3,
        foreground_prob=0.5,
        sw_batch_size=4,
    )
    cls = ClassificationConfig(
        seed=seed,
        steps=preset.cls_steps,
        lr=preset.cls_lr,
        test_fraction=preset.test_fraction,
        device=device,
        label_key=preset.cls_label,
        mode=preset.cls_mode,
        input_size=(preset.real_size,) * 3 if real else None,
        batch_size=4,
    )
    return seg, cls


def run_downstream(
    task: str,
    encoder: nn.Module,
    dataset: CachedDataset,
    preset: Preset,
    seed: int,
    split: Any,
    method: str,
    device: str,
    real: bool,
) -> dict[str, Any]:
    """One downstream run of a (method, seed): ``segmentation`` or ``classification``."""
    from lightly_topo.eval.low_label import run_low_label
    from lightly_topo.eval.missing_modality import run_missing_modality

    seg, cls = task_configs(preset, seed, device, real)
    start, cpu = time.perf_counter(), time.process_time()
    if task == SEGMENTATION:
        result: Any = run_missing_modality(encoder, dataset, seg, split=split, init=method)
    else:
        result = run_low_label(
            encoder, dataset, cls, preset.low_label_fractions, split=split, init=method
        )
    return {
        "kind": "downstream",
        "task": task,
        "method": method,
        "seed": seed,
        "status": "ok",
        "wall_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
        "result": result.to_dict(),
    }


# ------------------------------------------------------------------------------ the run
def run_benchmark(
    preset: Preset,
    out: str | Path,
    data: str | Path | None = None,
    pretrain_on: str = "auto",
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchmarkResult:
    """Run (or resume) the benchmark and write its report.

    Args:
        preset: The settings (:func:`~lightly_topo.benchmark.presets.get_preset`).
        out: Output folder: ``results.md``, ``results.csv``, ``results.json``, ``*.png``,
            ``runs/`` (one JSON record per run) and ``pretrain/`` (checkpoints).
        data: A real dataset folder for the downstream tasks; ``None``: synthetic brains.
        pretrain_on: ``"synthetic"`` (separately generated synthetic subjects),
            ``"train-subjects"`` (real data only: each seed's training subjects) or
            ``"auto"`` (``train-subjects`` with real data, else ``synthetic``).
        command: The command line recorded in the outputs.
        progress: Called with a line per finished run (default: logged).

    Returns:
        The :class:`BenchmarkResult`.

    Raises:
        BenchmarkError: Data without the labels a task needs, too few subjects, a bad
            ``pretrain_on``, or ``cuda`` without a GPU.
    """
    threads = torch.get_num_threads()
    if preset.cpu_threads is not None:
        torch.set_num_threads(preset.cpu_threads)
    try:
        return _run(preset, out, data, pretrain_on, command, progress)
    finally:
        torch.set_num_threads(threads)


def _run(
    preset: Preset,
    out: str | Path,
    data: str | Path | None,
    pretrain_on: str,
    command: str | None,
    progress: Callable[[str], None] | None,
) -> BenchmarkResult:
    from lightly_topo.benchmark import report
    from lightly_topo.eval.tasks import load_encoder

    started = time.perf_counter()
    say = progress or logger.info
    out = Path(out).expanduser()
    data_str = None if data is None else str(Path(data).expanduser())
    if pretrain_on == "auto":
        pretrain_on = "synthetic" if data is None else "train-subjects"
    if pretrain_on not in ("synthetic", "train-subjects"):
        raise BenchmarkError(
            f"pretrain_on must be 'synthetic', 'train-subjects' or 'auto', got {pretrain_on!r}"
        )
    if pretrain_on == "train-subjects" and data is None:
        raise BenchmarkError("pretrain_on='train-subjects' needs --data (a real dataset folder)")
    device = resolve_device(preset)
    dataset = downstream_dataset(preset, data_str)
    check_tasks(dataset, preset, data_str)
    modalities = dataset.modality_names
    if data_str is not None and pretrain_on == "synthetic":
        from lightly_topo.data.synthetic import SYNTHETIC_MODALITIES

        unknown = [m for m in modalities if m not in SYNTHETIC_MODALITIES]
        if unknown:
            raise BenchmarkError(
                f"--data {data_str} has modalities {unknown} that the synthetic generator "
                "cannot make; use pretrain_on='train-subjects'"
            )
    fingerprint = settings_fingerprint(preset, data_str, pretrain_on)
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    reused = 0
    skipped = 0

    def over_budget() -> bool:
        budget = preset.time_budget_s
        return budget is not None and time.perf_counter() - started > budget

    where = "the synthetic data" if data_str is None else f"--data {data_str}"
    splits = seed_splits(dataset, preset, where)
    for seed in preset.seeds:
        split = splits[seed]
        for method in preset.methods:
            encoder_path: Path | None = None
            if method != "scratch":
                path = runs / record_name("pretrain", method, seed)
                record = read_record(path, fingerprint)
                if record is not None and record.get("status") == "ok":
                    if not (out / record["encoder"]).is_file():
                        record = None
                if record is None and over_budget():
                    skipped += 1 + 2
                    continue
                if record is None:
                    real = (
                        None
                        if data_str is None or pretrain_on == "synthetic"
                        else (data_str, set(split.train))
                    )
                    record = run_pretrain(preset, method, seed, out, modalities, device, real)
                    record["fingerprint"] = fingerprint
                    write_json_atomic(record, path)
                    say(_line(record))
                else:
                    reused += 1
                records.append(record)
                if record.get("status") != "ok":
                    continue
                encoder_path = out / record["encoder"]
            for task in (SEGMENTATION, CLASSIFICATION):
                path = runs / record_name(task, method, seed)
                record = read_record(path, fingerprint)
                if record is None and over_budget():
                    skipped += 1
                    continue
                if record is None:
                    if encoder_path is None:
                        encoder = scratch_encoder(preset, modalities, seed)
                    else:
                        encoder = load_encoder(encoder_path, modalities, map_location=device)
                    record = run_downstream(
                        task,
                        encoder,
                        dataset,
                        preset,
                        seed,
                        split,
                        method,
                        device,
                        data_str is not None,
                    )
                    record["fingerprint"] = fingerprint
                    write_json_atomic(record, path)
                    say(_line(record))
                else:
                    reused += 1
                records.append(record)
    if skipped:
        logger.warning(
            "time budget of %.0f s spent: %d runs not done; run the same command again to "
            "finish them (finished runs are reused)",
            preset.time_budget_s,
            skipped,
        )
    wall = time.perf_counter() - started
    meta = provenance(command)
    meta.update(
        preset=preset.to_dict(),
        data=data_str or "synthetic",
        pretrain_on=pretrain_on,
        device=device,
        seeds=list(preset.seeds),
        wall_s=wall,
        records_reused=reused,
        runs_not_done=skipped,
        design=design_statement(preset, data_str, pretrain_on),
        split_sizes={
            "train": len(splits[preset.seeds[0]].train),
            "test": len(splits[preset.seeds[0]].test),
        },
    )
    files = report.write_report(out, records, meta)
    return BenchmarkResult(out=out, records=records, files=files, wall_s=wall, reused=reused)


def design_statement(preset: Preset, data: str | None, pretrain_on: str) -> str:
    """One paragraph on which subjects were used for what (written into the report)."""
    if preset.split == "kfold":
        how = (
            f"split into {len(preset.seeds)} folds (stratified {len(preset.seeds)}-fold "
            "cross-validation: seed i tests fold i, every subject is tested once)"
        )
    else:
        how = (
            f"split per seed into {1 - preset.test_fraction:.0%} train / "
            f"{preset.test_fraction:.0%} test subjects"
        )
    if data is None:
        down = (
            f"{preset.downstream_subjects} synthetic brains of {preset.synthetic_size}^3 "
            f"(modalities {', '.join(preset.modalities)}), {how}"
        )
    else:
        down = f"the subjects of {data}, {how}"
    if pretrain_on == "synthetic":
        pre = (
            f"{preset.pretrain_subjects} separately generated synthetic brains, the same for "
            "every method and seed (no downstream subject, train or test, is seen in "
            "pretraining)"
        )
    else:
        pre = (
            "the training subjects of each seed's split only (no test subject of that seed "
            "is seen in pretraining)"
        )
    target = (
        "whole lesion (every lesion label merged into one class)"
        if preset.seg_target == "whole"
        else "every label of the label map"
    )
    return f"Downstream: {down}. Pretraining: {pre}. Segmentation target: {target}."


def _line(record: dict[str, Any]) -> str:
    what = record.get("task", "pretrain")
    status = record.get("status", "ok")
    wall = record.get("wall_s")
    timing = f" in {wall:.1f} s" if isinstance(wall, float) else ""
    return f"{what:<14} {record['method']:<14} seed {record['seed']}: {status}{timing}"


__all__ = [
    "DOWNSTREAM_DATA_SEED",
    "BenchmarkError",
    "BenchmarkResult",
    "PresetError",
    "run_benchmark",
]
