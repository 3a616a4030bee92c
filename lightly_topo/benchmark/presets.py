"""Benchmark presets: which methods, seeds, sizes and schedules a benchmark run uses.

Three presets ship:

* ``smoke``: every compared method, tiny (16^3 volumes, 2 pretraining steps, 2 seeds); under
  2 minutes on a 2-core CPU. It checks the pipeline end to end; its numbers mean nothing.
* ``quick``: every compared method, 3 seeds, small (32^3 volumes, 16^3 crops); sized to about
  10 minutes on a 2-core CPU (551 s measured). The README's table.
* ``full``: every method (the ``+topo`` combinations included), 3 seeds, larger volumes and
  schedules; sized for one run of at most 10 minutes on one H100/H200 GPU.

Every field can be overridden (``lightly-topo benchmark --set pretrain_steps=50``).

>>> preset = get_preset("smoke", seeds=(0, 1, 2))
>>> preset.name, preset.seeds, "taco" in preset.methods
('smoke', (0, 1, 2), True)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Methods every preset compares: the from-scratch start, the instance-level baselines,
#: TACO, the SimCLR + topology combination and cross-modal SimCLR.
CORE_METHODS: tuple[str, ...] = (
    "scratch",
    "simclr",
    "byol",
    "mae",
    "xmodal-simclr",
    "taco",
    "simclr+topo",
)

#: Every method the benchmark knows (``full`` runs them all).
ALL_METHODS: tuple[str, ...] = (*CORE_METHODS, "byol+topo", "mae+topo")

#: Methods whose pretraining uses the topological alignment terms.
TOPO_METHODS: tuple[str, ...] = ("taco", "simclr+topo", "byol+topo", "mae+topo")

#: Instance-level baselines: each subject (or its modality pair) is one instance.
INSTANCE_METHODS: tuple[str, ...] = ("simclr", "byol", "mae", "xmodal-simclr")


class PresetError(ValueError):
    """An unknown preset, an unknown override key or a value out of range."""


@dataclass(frozen=True)
class Preset:
    """Everything a benchmark run needs besides the output folder and the data path.

    Attributes:
        name: Preset name.
        methods: Methods compared (``"scratch"``: no pretraining, same architecture).
        seeds: Seeds; seed ``s`` fixes the subject split, the pretraining and the
            downstream schedule, so methods are paired over seeds.
        backbone: Registered backbone name.
        backbone_kwargs: Keyword arguments of the backbone.
        modalities: Modality vocabulary of the synthetic data (real data: all found).
        synthetic_size: Edge of the synthetic volumes (voxels).
        pretrain_subjects: Synthetic subjects generated for pretraining (separate from the
            downstream subjects).
        pretrain_steps: Optimiser steps of each pretraining.
        pretrain_batch_size: Subjects (TACO: subject pairs) per pretraining batch.
        crop_size: Edge of the pretraining views and of the segmentation patches.
        pretrain_lr: Peak pretraining learning rate (the same for every method).
        topo_level: Backbone feature level of the topology terms (index into the strides).
        mask_patch: Edge of the masked input patches of MAE-style methods (voxels).
        device_augment: Batched view augmentation (faster on every device).
        downstream_subjects: Synthetic subjects of the downstream tasks.
        test_fraction: Share of the downstream subjects held out for testing (``split``
            ``"random"``).
        split: ``"random"``: every seed draws its own stratified train/test split;
            ``"kfold"``: the seeds are the folds of one stratified k-fold cross-validation
            (``k`` = the number of seeds), so every subject is tested exactly once.
        seg_steps: Segmentation fine-tuning steps.
        seg_batch_size: Patches per segmentation step.
        seg_lr: Segmentation learning rate.
        cls_label: Subject label classified (synthetic: ``lesion_type``).
        cls_mode: ``"linear"`` (frozen encoder) or ``"finetune"``.
        cls_steps: Classification steps.
        cls_lr: Classification learning rate.
        low_label_fractions: Fractions of labelled training subjects of the low-label curve.
        real_spacing: Voxel spacing (mm) real data is resampled to.
        real_size: Real volumes are centre cropped / padded to this edge for classification.
        seg_target: ``"whole"``: every lesion class merged into one foreground class
            (whole lesion, as BraTS "whole tumour"); ``"classes"``: the label map as is.
        cpu_threads: Torch CPU threads during the run (restored afterwards); ``None``
            leaves them. One thread is much faster for the small 3D convolutions of the CPU
            presets (two threads spend their time synchronising, worse on a loaded machine).
        time_budget_s: After this many seconds no new run starts; the report is written
            from the finished runs and says how many are missing (a re-run finishes them).
            ``None``: no limit.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        description: One line on what the preset is for.
    """

    name: str
    methods: tuple[str, ...] = CORE_METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    backbone: str = "resenc"
    backbone_kwargs: dict[str, Any] = field(
        default_factory=lambda: {
            "features": [8, 16, 32],
            "strides": [2, 2, 2],
            "blocks_per_stage": 1,
        }
    )
    modalities: tuple[str, ...] = ("t1", "t2", "flair")
    synthetic_size: int = 32
    pretrain_subjects: int = 24
    pretrain_steps: int = 100
    pretrain_batch_size: int = 4
    crop_size: int = 16
    pretrain_lr: float = 1e-3
    topo_level: int = 1
    mask_patch: int = 4
    device_augment: bool = True
    downstream_subjects: int = 30
    test_fraction: float = 0.3
    split: str = "random"
    seg_steps: int = 200
    seg_batch_size: int = 4
    seg_lr: float = 1e-2
    cls_label: str = "lesion_type"
    cls_mode: str = "linear"
    cls_steps: int = 100
    cls_lr: float = 1e-2
    low_label_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    real_spacing: float = 4.0
    real_size: int = 48
    seg_target: str = "whole"
    cpu_threads: int | None = 1
    time_budget_s: float | None = None
    device: str = "auto"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.methods:
            raise PresetError(f"preset {self.name!r}: no method to compare")
        unknown = [m for m in self.methods if m not in ALL_METHODS]
        if unknown:
            raise PresetError(
                f"preset {self.name!r}: unknown methods {unknown}; choose from {ALL_METHODS}"
            )
        if len(set(self.methods)) != len(self.methods):
            raise PresetError(f"preset {self.name!r}: a method is repeated in {self.methods}")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise PresetError(
                f"preset {self.name!r}: seeds must be at least 2 distinct values (confidence "
                f"intervals need two), got {self.seeds}"
            )
        if any(s < 0 for s in self.seeds):
            raise PresetError(f"preset {self.name!r}: seeds must be non-negative, got {self.seeds}")
        for key in (
            "pretrain_steps",
            "pretrain_batch_size",
            "pretrain_subjects",
            "downstream_subjects",
            "seg_steps",
            "cls_steps",
            "crop_size",
            "synthetic_size",
            "seg_batch_size",
        ):
            if int(getattr(self, key)) < 1:
                raise PresetError(f"preset {self.name!r}: {key} must be at least 1")
        if self.crop_size > self.synthetic_size:
            raise PresetError(
                f"preset {self.name!r}: crop_size {self.crop_size} exceeds synthetic_size "
                f"{self.synthetic_size}"
            )
        if not self.low_label_fractions or not all(0 < f <= 1 for f in self.low_label_fractions):
            raise PresetError(
                f"preset {self.name!r}: low_label_fractions must be in (0, 1], got "
                f"{self.low_label_fractions}"
            )
        if 1.0 not in self.low_label_fractions:
            raise PresetError(
                f"preset {self.name!r}: low_label_fractions must include 1.0 (the "
                "classification score is the curve's full-label point)"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise PresetError(f"preset {self.name!r}: device must be auto, cpu or cuda")
        if self.seg_target not in ("whole", "classes"):
            raise PresetError(f"preset {self.name!r}: seg_target must be whole or classes")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise PresetError(f"preset {self.name!r}: cpu_threads must be at least 1 or null")
        if self.split not in ("random", "kfold"):
            raise PresetError(f"preset {self.name!r}: split must be random or kfold")
        if self.cls_mode not in ("linear", "finetune"):
            raise PresetError(f"preset {self.name!r}: cls_mode must be linear or finetune")

    def to_dict(self) -> dict[str, Any]:
        """The preset as a JSON-serialisable dict."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        seeds=(0, 1),
        modalities=("t1", "flair"),
        backbone_kwargs={"features": [4, 8, 16], "strides": [2, 2, 2], "blocks_per_stage": 1},
        synthetic_size=16,
        pretrain_subjects=6,
        pretrain_steps=2,
        pretrain_batch_size=2,
        crop_size=16,
        downstream_subjects=10,
        test_fraction=0.4,
        seg_steps=2,
        seg_batch_size=2,
        cls_steps=10,
        low_label_fractions=(0.5, 1.0),
        real_size=32,
        device="cpu",
        description=(
            "pipeline check: every method, tiny sizes, 2 seeds (documented exception to "
            "the 3-seed rule); numbers carry no meaning"
        ),
    ),
    "quick": Preset(
        name="quick",
        description="every compared method, 3 seeds, 32^3 synthetic brains; about 10 min on 2 CPU cores",
    ),
    "full": Preset(
        name="full",
        methods=ALL_METHODS,
        backbone_kwargs={
            "features": [16, 32, 64, 128],
            "strides": [1, 2, 2, 2],
            "blocks_per_stage": 1,
        },
        modalities=("t1", "t2", "pd", "flair"),
        synthetic_size=48,
        pretrain_subjects=32,
        pretrain_steps=100,
        pretrain_batch_size=8,
        crop_size=32,
        topo_level=2,
        mask_patch=8,
        downstream_subjects=36,
        test_fraction=0.3,
        seg_steps=150,
        seg_batch_size=4,
        cls_steps=200,
        low_label_fractions=(0.1, 0.25, 0.5, 1.0),
        real_spacing=2.0,
        real_size=64,
        cpu_threads=None,
        time_budget_s=480.0,
        description="every method incl. +topo combinations, 3 seeds, 48^3; one GPU, <= 10 min",
    ),
}


def get_preset(name: str, **overrides: Any) -> Preset:
    """A shipped preset, with fields overridden.

    Raises:
        PresetError: Unknown preset or field, or a value out of range.
    """
    if name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    known = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise PresetError(f"unknown preset fields {unknown}; known fields: {sorted(known)}")
    values: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) and k != "backbone_kwargs" else v
        for k, v in overrides.items()
    }
    return dataclasses.replace(PRESETS[name], **values)


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` from the command line; the value is read as JSON where it parses.

    >>> parse_override("pretrain_steps=50"), parse_override("seeds=[0,1,2]")
    (('pretrain_steps', 50), ('seeds', [0, 1, 2]))
    >>> parse_override("device=cuda")
    ('device', 'cuda')
    """
    import json

    if "=" not in text:
        raise PresetError(f"--set {text!r}: expected KEY=VALUE, e.g. pretrain_steps=50")
    key, raw = text.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
