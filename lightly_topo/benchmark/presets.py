"""Benchmark presets: which methods, seeds, sizes and budgets a benchmark run uses.

Four presets ship:

* ``smoke``: every method and control, tiny (16^3 brains, a few pretraining steps, 2 seeds);
  about a minute on a 2-core CPU. It checks the pipeline end to end; its numbers mean
  nothing and its instrument check is not expected to pass.
* ``quick``: every compared method and the controls, 5 seeds, 32^3 synthetic brains, frozen
  probes on 416 downstream subjects; at most 15 minutes on 2 CPU cores. The README's table.
* ``standard``: the same at 48^3 with more subjects and a larger pretraining budget; at
  most 90 minutes on 2 CPU cores. Committed in ``benchmarks/results/benchmark_standard``.
* ``full``: every method (the ``+topo`` combinations included), 48^3, larger backbone and
  budget; for one GPU.

Every field can be overridden (``lightly-topo benchmark --set pretrain_volumes=4800``).

>>> preset = get_preset("smoke", seeds=(0, 1, 2))
>>> preset.name, preset.seeds, "taco" in preset.methods, "supervised" in preset.methods
('smoke', (0, 1, 2), True, True)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lightly_topo.errors import LightlyTopoError

#: The controls: ``scratch`` (the frozen random initialisation: the negative control, and
#: the encoder every method starts from) and ``supervised`` (the positive control, trained
#: with the pretraining subjects' labels).
CONTROLS: tuple[str, ...] = ("scratch", "supervised")

#: Self-supervised methods every preset compares: the instance-level baselines, TACO, the
#: SimCLR + topology combination and cross-modal SimCLR.
CORE_SSL: tuple[str, ...] = (
    "simclr",
    "byol",
    "mae",
    "xmodal-simclr",
    "taco",
    "simclr+topo",
)

#: Methods (controls included) every preset compares.
CORE_METHODS: tuple[str, ...] = (*CONTROLS, *CORE_SSL)

#: Every method the benchmark knows (``full`` runs them all).
ALL_METHODS: tuple[str, ...] = (*CORE_METHODS, "byol+topo", "mae+topo")

#: Methods whose pretraining uses the topological alignment terms.
TOPO_METHODS: tuple[str, ...] = ("taco", "simclr+topo", "byol+topo", "mae+topo")

#: Instance-level baselines: each subject (or its modality pair) is one instance.
INSTANCE_METHODS: tuple[str, ...] = ("simclr", "byol", "mae", "xmodal-simclr")

#: The raw-intensity floor: the same probes on the input intensities (always reported).
INTENSITY = "intensity"


class PresetError(LightlyTopoError, ValueError):
    """An unknown preset, an unknown override key or a value out of range."""


@dataclass(frozen=True)
class Preset:
    """Everything a benchmark run needs besides the output folder and the data path.

    Attributes:
        name: Preset name.
        methods: Methods compared; ``scratch`` and ``supervised`` are the controls.
        seeds: Seeds; seed ``s`` fixes every method's initialisation (the same weights for
            all methods and for ``scratch``), its batch order, views and masks, and the
            probes' voxel draw, so methods are paired over seeds.
        backbone: Registered backbone name.
        backbone_kwargs: Keyword arguments of the backbone.
        modalities: Modality vocabulary of the synthetic data (real data: all found).
        synthetic_size: Edge of the synthetic volumes (voxels).
        synthetic_fov_mm: Field of view of the synthetic volumes (mm); voxels are
            ``synthetic_fov_mm / synthetic_size`` mm.
        pretrain_subjects: Synthetic subjects generated for pretraining (separate from the
            downstream subjects).
        pretrain_volumes: Pretraining budget of every method, in single-modality volumes
            passed through the trained encoder; a method's steps are this budget divided
            by its volumes per step (:meth:`PretrainMethod.volumes_per_step`).
        supervised_volumes: Budget of the positive control (``None``: ``pretrain_volumes``);
            at least ``pretrain_volumes``, so the control is never the weaker for budget.
        pretrain_batch_size: Subjects (TACO: subject pairs) per pretraining batch.
        crop_size: Edge of the pretraining views.
        pretrain_lr: Peak pretraining learning rate (the same for every method).
        topo_level: Backbone feature level of the topology terms (index into the strides).
        mask_patch: Edge of the masked input patches of MAE-style methods (voxels).
        device_augment: Batched view augmentation (faster on every device).
        probe_train_subjects: Downstream subjects the probes are fitted on (subject labels).
        probe_dense_train_subjects: The first of them whose voxels fit the dense probes
            (thousands of voxels each: fewer subjects suffice).
        probe_test_subjects: Downstream subjects the probes are scored on (subject labels).
        probe_dense_test_subjects: The first of the test subjects the dense probes
            (segmentation, parcellation, missing modalities) are scored on; a subject's
            Dice averages thousands of voxels, so fewer subjects give the same precision.
        probe_class_voxels: Voxels drawn per class and training subject for the dense probe.
        probe_random_voxels: Voxels drawn uniformly per training subject besides.
        cpu_threads: Torch CPU threads during pretraining (restored afterwards); ``None``
            leaves them. One thread is much faster for the small 3D convolutions of the CPU
            presets. A fixed count makes the numbers independent of the machine's default.
        probe_threads: Torch CPU threads while probing (voxel-wise interpolation and
            argmax, which two threads run 1.7 times faster); ``None`` leaves them.
        real_folds: Cross-validation folds on a real data set (``--data``); per fold every
            method pretrains on the training folds, so a real run costs about this many
            synthetic runs' pretraining.
        real_max_size: Voxels per axis (median subject) a real set is coarsened to, at most
            (per-axis whole factors of the header spacing).
        subject_label: Subject label probed on a real set (``None``: the reader's default,
            :data:`~lightly_topo.benchmark.real_data.READER_TASKS`).
        time_budget_s: The run's wall-time budget (on a real set, per fold). The run is estimated before it starts
            (from a timed step of the backbone) and refused if the estimate exceeds it.
            ``None``: no limit.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        description: One line on what the preset is for.
    """

    name: str
    methods: tuple[str, ...] = CORE_METHODS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
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
    synthetic_fov_mm: float = 176.0
    pretrain_subjects: int = 24
    pretrain_volumes: int = 1200
    supervised_volumes: int | None = 2400
    pretrain_batch_size: int = 4
    crop_size: int = 16
    pretrain_lr: float = 1e-3
    topo_level: int = 1
    mask_patch: int = 4
    device_augment: bool = True
    probe_train_subjects: int = 192
    probe_dense_train_subjects: int = 48
    probe_test_subjects: int = 224
    probe_dense_test_subjects: int = 40
    probe_class_voxels: int = 32
    probe_random_voxels: int = 256
    cpu_threads: int | None = 1
    probe_threads: int | None = 2
    real_folds: int = 3
    real_max_size: int = 48
    subject_label: str | None = None
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
            "pretrain_volumes",
            "pretrain_batch_size",
            "pretrain_subjects",
            "crop_size",
            "synthetic_size",
            "probe_train_subjects",
            "probe_dense_train_subjects",
            "probe_test_subjects",
            "probe_dense_test_subjects",
            "probe_class_voxels",
        ):
            if int(getattr(self, key)) < 1:
                raise PresetError(f"preset {self.name!r}: {key} must be at least 1")
        if self.supervised_volumes is not None and self.supervised_volumes < self.pretrain_volumes:
            raise PresetError(
                f"preset {self.name!r}: supervised_volumes {self.supervised_volumes} is below "
                f"pretrain_volumes {self.pretrain_volumes}: the positive control needs at least "
                "the methods' budget"
            )
        if self.real_folds < 2:
            raise PresetError(f"preset {self.name!r}: real_folds must be at least 2")
        if self.real_max_size < self.crop_size:
            raise PresetError(
                f"preset {self.name!r}: real_max_size {self.real_max_size} is below crop_size "
                f"{self.crop_size}"
            )
        if self.probe_random_voxels < 0:
            raise PresetError(f"preset {self.name!r}: probe_random_voxels must be >= 0")
        if self.crop_size > self.synthetic_size:
            raise PresetError(
                f"preset {self.name!r}: crop_size {self.crop_size} exceeds synthetic_size "
                f"{self.synthetic_size}"
            )
        if not self.synthetic_fov_mm > 0:
            raise PresetError(f"preset {self.name!r}: synthetic_fov_mm must be positive")
        if self.device not in ("auto", "cpu", "cuda"):
            raise PresetError(f"preset {self.name!r}: device must be auto, cpu or cuda")
        for key in ("cpu_threads", "probe_threads"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise PresetError(f"preset {self.name!r}: {key} must be at least 1 or null")

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
        synthetic_fov_mm=220.0,
        pretrain_subjects=6,
        pretrain_volumes=16,
        supervised_volumes=None,
        pretrain_batch_size=2,
        crop_size=16,
        probe_train_subjects=6,
        probe_dense_train_subjects=6,
        probe_test_subjects=6,
        probe_dense_test_subjects=6,
        probe_class_voxels=8,
        probe_random_voxels=32,
        device="cpu",
        description=(
            "pipeline check: every method and control, tiny sizes, 2 seeds; numbers carry "
            "no meaning"
        ),
    ),
    "quick": Preset(
        name="quick",
        time_budget_s=900.0,
        description=(
            "every compared method and the controls, 5 seeds, 32^3 synthetic brains, frozen "
            "probes on 416 subjects; at most 15 min on 2 CPU cores"
        ),
    ),
    "standard": Preset(
        name="standard",
        synthetic_size=48,
        pretrain_subjects=48,
        pretrain_volumes=4800,
        supervised_volumes=9600,
        crop_size=24,
        probe_train_subjects=180,
        probe_dense_train_subjects=60,
        probe_test_subjects=240,
        probe_dense_test_subjects=96,
        time_budget_s=5400.0,
        description=(
            "every compared method and the controls, 5 seeds, 48^3 synthetic brains (3.7 mm "
            "voxels), frozen probes on 420 subjects; at most 90 min on 2 CPU cores"
        ),
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
        pretrain_subjects=64,
        pretrain_volumes=25600,
        supervised_volumes=None,
        pretrain_batch_size=8,
        crop_size=32,
        topo_level=2,
        mask_patch=8,
        probe_train_subjects=192,
        probe_dense_train_subjects=96,
        probe_test_subjects=384,
        probe_dense_test_subjects=128,
        cpu_threads=None,
        probe_threads=None,
        description="every method incl. +topo combinations, 5 seeds, 48^3; one GPU",
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

    >>> parse_override("pretrain_volumes=50"), parse_override("seeds=[0,1,2]")
    (('pretrain_volumes', 50), ('seeds', [0, 1, 2]))
    >>> parse_override("device=cuda")
    ('device', 'cuda')
    """
    from lightly_topo.methods.config import parse_set

    if "=" not in text:
        raise PresetError(f"--set {text!r}: expected KEY=VALUE, e.g. pretrain_volumes=2880")
    return parse_set(text)
