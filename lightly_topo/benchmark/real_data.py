"""Real data sets through the probe protocol: subjects, grid, voxel classes, label, folds.

``lightly-topo benchmark --data FOLDER`` reads the folder with
:func:`~lightly_topo.data.read_subjects` (layout detected) and
:class:`~lightly_topo.data.MultiModalVolumeDataset` (RAS+, cropped to the foreground with a
margin, z-scored per modality), then:

* **grid from the data**: the voxel size is the headers' (median over subjects), coarsened
  per axis by the smallest whole factor that brings the median volume to at most
  ``real_max_size`` voxels along that axis, axes of one header spacing sharing one factor,
  so anisotropy that is in the data stays (a 2 x 2 x 1 mm grid becomes 6 x 6 x 1 mm, not
  isotropic) and none is introduced (2 mm isotropic stays isotropic); every subject is then padded (edge values: the
  crop margin is background) to the largest shape, rounded up to a multiple of the
  backbone's total stride;
* **voxel classes**: the label maps' values (``0`` background), named by the reader's task
  (:data:`READER_TASKS`); the headline is the mean Dice of the non-background classes;
* **subject label**: ``subject_label`` of the preset, else the reader's documented default;
  a label that no subject has is an error that lists the labels that exist;
* **folds**: subject-level k-fold cross-validation (``real_folds``, stratified by the
  label; :func:`~lightly_topo.eval.splits.kfold_subjects`), every subject tested once per
  seed. Per fold, every method pretrains on the training folds' images (the positive
  control on their voxel labels) and the probes are fitted on the training folds.

A real set too small for the folds raises :class:`RealDataError` with the minimum.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightly_topo.benchmark.datasets import ProbeSet
from lightly_topo.benchmark.presets import Preset
from lightly_topo.errors import LightlyTopoError

logger = logging.getLogger("lightly_topo.benchmark")

#: Seed of the fold assignment (fixed: every seed and method sees the same folds).
FOLD_SEED = 0

#: Test subjects per fold, at least.
MIN_TEST_PER_FOLD = 2


class RealDataError(LightlyTopoError, ValueError):
    """A real data set the probe protocol cannot run on (the message says why)."""


@dataclass(frozen=True)
class RealTask:
    """What the benchmark measures on one reader's data.

    Attributes:
        target: Name of the headline voxel classes (e.g. ``"FLAIR abnormality"``).
        class_names: Names of the label-map values (others are named ``label <value>``).
        label: Default subject label (``None``: none by default).
        background: Background convention of the images (``"zero"`` or ``"corner"``).
        source: Attribution shown in the report.
    """

    target: str
    class_names: dict[int, str]
    label: str | None = None
    background: str = "zero"
    source: str = ""


#: The task of every reader; a layout not listed gets :data:`GENERIC_TASK`.
READER_TASKS: dict[str, RealTask] = {
    "lgg": RealTask(
        "FLAIR abnormality",
        {1: "flair_abnormality"},
        label="neoplasm_histologic_grade",
        source="TCGA-LGG, Buda et al. 2019 (CC BY-NC-SA 4.0)",
    ),
    "ms_lesjak": RealTask(
        "White-matter lesion",
        {1: "lesion"},
        label="ms_type",
        source="Lesjak et al. 2018 (CC BY)",
    ),
    "brats": RealTask(
        "Tumour region",
        {1: "necrosis", 2: "oedema", 4: "enhancing"},
        source="BraTS 2018 (CC BY-NC-SA 4.0)",
    ),
    "deepmedic": RealTask(
        "Tumour region",
        {1: "necrosis", 2: "oedema", 3: "non_enhancing", 4: "enhancing"},
        background="corner",
        source="BraTS 2015 via DeepMedic (CC BY-NC-SA 4.0)",
    ),
    "ixi": RealTask(
        "Anatomical region",
        {},
        label="Sex",
        source="IXI (CC BY-SA 3.0), DLMUSE labels by CBICA",
    ),
}

GENERIC_TASK = RealTask("Labelled region", {})


@dataclass(frozen=True)
class Grid:
    """The common voxel grid of a real probe set.

    Attributes:
        header_spacing: Median voxel size of the headers (mm).
        spacing: Voxel size the subjects were resampled to (mm).
        shape: The largest padded volume shape (each subject keeps its own).
    """

    header_spacing: tuple[float, float, float]
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]


def choose_spacing(
    spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]], max_size: int
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``(header, target)`` voxel sizes: the median header spacing, and it coarsened per axis
    by the smallest whole factor that brings the median shape to ``max_size`` voxels or
    fewer. Axes with the same header spacing (within 10%) share the largest of their
    factors, so anisotropy is kept where the data have it and never introduced.

    >>> choose_spacing([(2, 2, 1)] * 3, [(128, 128, 40)] * 3, 48)
    ((2.0, 2.0, 1.0), (6.0, 6.0, 1.0))
    """
    header = np.median(np.asarray(spacings, dtype=np.float64), axis=0)
    median = np.median(np.asarray(shapes, dtype=np.float64), axis=0)
    factors = np.maximum(1, np.ceil(median / max_size))
    shared = np.isclose(header[:, None], header[None, :], rtol=0.1)
    factors = np.array([factors[shared[a]].max() for a in range(3)])
    target = header * factors
    return (
        (float(header[0]), float(header[1]), float(header[2])),
        (float(target[0]), float(target[1]), float(target[2])),
    )


def _header_geometry(
    subjects: Sequence[Any],
) -> tuple[list[tuple[float, ...]], list[tuple[int, ...]]]:
    import nibabel as nib

    from lightly_topo.data.preprocess import voxel_spacing

    spacings, shapes = [], []
    for subject in subjects:
        first = next(iter(subject.images.values()))
        image: Any = nib.load(str(first.path))
        affine = np.asarray(image.affine, dtype=np.float64)
        # RAS+ reorientation permutes axes: the spacing and shape follow the affine's axes.
        order = np.argsort(np.abs(affine[:3, :3]).argmax(axis=0))
        spacing = np.array(voxel_spacing(affine), dtype=np.float64)[order]
        shape = np.array(image.shape[:3])[order]
        spacings.append(tuple(float(s) for s in spacing))
        shapes.append(tuple(int(s) for s in shape))
    return spacings, shapes


def _pad_to(volume: Tensor, shape: Sequence[int]) -> Tensor:
    """``(C, D, H, W)`` padded symmetrically to ``shape`` with edge values (MONAI)."""
    from monai.transforms import SpatialPad

    return torch.as_tensor(SpatialPad(list(shape), mode="replicate")(volume))


def _class_table(values: Sequence[int], task: RealTask) -> tuple[dict[int, int], tuple[str, ...]]:
    ordered = sorted({0, *values})
    names = tuple(
        "background" if v == 0 else task.class_names.get(v, f"label {v}") for v in ordered
    )
    return {v: i for i, v in enumerate(ordered)}, names


def choose_label(
    labels: Sequence[dict[str, Any]], wanted: str | None, task: RealTask, folder: str
) -> str | None:
    """The subject label to probe: ``wanted``, else the task's default where subjects have it.

    Raises:
        RealDataError: ``wanted`` is a label no subject has (the message lists those that
            exist and how many subjects have each).
    """
    counts: dict[str, int] = {}
    for row in labels:
        for key, value in row.items():
            if value is not None:
                counts[key] = counts.get(key, 0) + 1
    available = ", ".join(f"{k} ({n} subjects)" for k, n in sorted(counts.items())) or "none"
    if wanted is not None:
        if wanted not in counts:
            raise RealDataError(
                f"--data {folder}: no subject has the label {wanted!r} (subject_label); the "
                f"labels that exist: {available}"
            )
        return wanted
    if task.label is not None and task.label in counts:
        return task.label
    logger.warning(
        "--data %s: no default subject label for this data set (labels that exist: %s); the "
        "subject-label task is skipped (choose one with --set subject_label=NAME)",
        folder,
        available,
    )
    return None


def real_probe_set(preset: Preset, folder: str | Path) -> ProbeSet:
    """Read a real data set into a :class:`ProbeSet` with its folds (see the module doc).

    Raises:
        RealDataError: No label maps, too few subjects for the folds, or an unknown
            ``subject_label``.
    """
    from lightly_topo.data import MultiModalVolumeDataset, read_subjects
    from lightly_topo.data.readers.auto import ALIASES, detect_layout
    from lightly_topo.eval.splits import kfold_subjects

    path = Path(folder).expanduser()
    if not path.exists():
        raise RealDataError(f"--data {path}: no such file or folder")
    layout = detect_layout(path)
    task = READER_TASKS.get(ALIASES.get(layout, layout), GENERIC_TASK)
    subjects = [s for s in read_subjects(path) if s.label_map is not None]
    minimum = preset.real_folds * MIN_TEST_PER_FOLD
    if len(subjects) < minimum:
        raise RealDataError(
            f"--data {path}: {len(subjects)} subject(s) with images and a label map; "
            f"{preset.real_folds}-fold cross-validation needs at least {minimum} "
            f"({MIN_TEST_PER_FOLD} test subjects per fold; lower real_folds with "
            "--set real_folds=K, K >= 2)"
        )
    spacings, shapes = _header_geometry(subjects)
    header, spacing = choose_spacing(spacings, shapes, preset.real_max_size)
    dataset = MultiModalVolumeDataset(
        subjects,
        spacing=spacing,
        crop_foreground=True,
        crop_margin=2,
        background=task.background,  # type: ignore[arg-type]
        image_dtype="float32",
    )
    names = tuple(dataset.modality_names)
    items = [dataset[i] for i in range(len(dataset))]
    stride = math.prod(int(s) for s in preset.backbone_kwargs.get("strides", [1]))
    values = sorted({int(v) for item in items for v in torch.unique(item["label_map"]).tolist()})
    code, class_names = _class_table(values, task)
    lookup = torch.zeros(max(values) + 1, dtype=torch.int64)
    for value, index in code.items():
        lookup[value] = index
    images, targets, masks = [], [], []
    for item in items:
        size = tuple(int(s) for s in item["label_map"].shape[1:])
        shape = tuple(max(preset.crop_size, math.ceil(s / stride) * stride) for s in size)
        stack = torch.zeros(len(names), *size)
        for m, name in enumerate(names):
            if name in item["images"]:
                stack[m] = item["images"][name][0]
        images.append(_pad_to(stack, shape) * item["mask"].float()[:, None, None, None])
        classes = lookup[item["label_map"]][0]
        targets.append(torch.from_numpy(np.pad(classes.numpy(), _symmetric(size, shape))))
        masks.append(item["mask"])
    ids = [str(item["subject_id"]) for item in items]
    label = choose_label([item["labels"] for item in items], preset.subject_label, task, str(path))
    label_values = [None if label is None else item["labels"].get(label) for item in items]
    labels = {} if label is None else {label: label_values}
    strata = [str(v) for v in label_values] if label is not None else None
    splits = kfold_subjects(ids, preset.real_folds, labels=strata, seed=FOLD_SEED)
    folds = [split.indices(ids) for split in splits]
    mask_tensor = torch.stack(masks)
    missing = int((~mask_tensor).any(1).sum())
    padded = np.array([tuple(image.shape[1:]) for image in images])
    low, high = padded.min(0), padded.max(0)
    grid = Grid(header, spacing, (int(high[0]), int(high[1]), int(high[2])))
    description = (
        f"{len(ids)} subjects of {path.name} ({task.source or layout}; modalities "
        f"{', '.join(names)}, {missing} subject(s) missing at least one), resampled from the "
        f"headers' {_mm(header)} to {_mm(spacing)} voxels (per-axis whole factors, anisotropy "
        f"kept), cropped to the foreground and padded to a multiple of {stride} voxels "
        f"({_range(low, high)}); "
        f"{preset.real_folds}-fold subject-level cross-validation"
        + (f" stratified by {label}" if label is not None else "")
        + ", every subject tested once per seed; voxel classes: "
        + ", ".join(class_names[1:])
    )
    train, test = folds[0]
    return ProbeSet(
        subject_ids=ids,
        images=images,
        masks=mask_tensor,
        targets=targets,
        class_names=class_names,
        labels=labels,
        train=train,
        test=test,
        modality_names=names,
        voxel_ml=float(np.prod(spacing)) / 1000.0,
        description=description,
        headline_classes=tuple(range(1, len(class_names))),
        lesion_class=1 if len(class_names) == 2 else None,
        headline_name=task.target,
        folds=folds,
        grid=grid,
    )


def _symmetric(size: Sequence[int], shape: Sequence[int]) -> list[tuple[int, int]]:
    # The same split as MONAI's SpatialPad(method="symmetric"): the extra voxel goes last.
    return [((t - s) // 2, t - s - (t - s) // 2) for s, t in zip(size, shape)]


def _range(low: Sequence[int], high: Sequence[int]) -> str:
    return "x".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(low, high))


def _mm(spacing: Sequence[float]) -> str:
    return " x ".join(f"{s:g}" for s in spacing) + " mm"


class ProbeSetItems:
    """The subjects ``indices`` of a :class:`ProbeSet` as :class:`~lightly_topo.data.VolumeItem`
    dicts (what pretraining reads): the padded images of the available modalities."""

    def __init__(self, probes: ProbeSet, indices: Sequence[int]) -> None:
        self.probes, self.indices = probes, list(indices)
        spacing = probes.grid.spacing if probes.grid is not None else (1.0, 1.0, 1.0)
        self.affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))

    @property
    def modality_names(self) -> tuple[str, ...]:
        return self.probes.modality_names

    @property
    def same_shape(self) -> bool:
        """Whether every subject has one shape (then views can be cut on a batch)."""
        return len({tuple(self.probes.images[i].shape) for i in self.indices}) == 1

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self.indices[index]
        mask = self.probes.masks[i]
        names = self.probes.modality_names
        return {
            "subject_id": self.probes.subject_ids[i],
            "session": None,
            "images": {n: self.probes.images[i][m][None] for m, n in enumerate(names) if mask[m]},
            "mask": mask.clone(),
            "modality_names": names,
            "label_map": self.probes.targets[i][None],
            "labels": {k: v[i] for k, v in self.probes.labels.items() if v[i] is not None},
            "affine": self.affine,
        }


def fold_table(probes: ProbeSet, indices: Sequence[int]) -> Any:
    """A :class:`~lightly_topo.methods.train.SubjectTable` of the subjects ``indices`` (a
    fold's training subjects) for pretraining."""
    from lightly_topo.methods.train import SubjectTable

    items = ProbeSetItems(probes, indices)
    spacing = probes.grid.spacing if probes.grid is not None else (1.0, 1.0, 1.0)
    return SubjectTable(
        dataset=items,
        modality_names=probes.modality_names,
        subject_ids=[probes.subject_ids[i] for i in indices],
        availability=probes.masks[list(indices)].numpy().astype(bool),
        labels=[items[n]["labels"] for n in range(len(items))],
        spacing=spacing,
        description=f"{len(items)} training subjects of the fold",
    )


__all__ = [
    "READER_TASKS",
    "Grid",
    "RealDataError",
    "RealTask",
    "choose_label",
    "choose_spacing",
    "fold_table",
    "real_probe_set",
]
