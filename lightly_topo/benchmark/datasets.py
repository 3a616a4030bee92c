"""The benchmark's subjects: synthetic pretraining brains and the downstream probe set.

Synthetic subjects of a preset share one generator setting: ``synthetic_size`` voxels over
``synthetic_fov_mm`` (5.5 mm voxels at 32^3, 3.7 mm at 48^3) and the benchmark's lesions
(:data:`~lightly_topo.data.synthetic.lesions.BENCHMARK_LESIONS`: hyperintensities larger
than a voxel, lesion intensity near grey matter). The pretraining subjects (seed
:data:`PRETRAIN_DATA_SEED`, ids ``synth-*``) and the downstream subjects (seed
:data:`DOWNSTREAM_DATA_SEED`, ids ``eval-*``) never share a subject.

The downstream :class:`ProbeSet` holds every subject in memory: its images, its voxel
targets (the parcellation classes of
:data:`~lightly_topo.data.synthetic.parcellation.PARCELLATION_CLASSES`: structures, sides
kept, plus one lesion class) and its subject labels (``lesion``, ``lesion_type``,
``hemisphere``). The first ``probe_train_subjects`` fit the probes, the next
``probe_test_subjects`` score them; the lesion schedule cycles every 6 subjects, so both
sides are balanced to within a cycle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightly_topo.benchmark.presets import Preset

#: Seed of the synthetic downstream subjects.
DOWNSTREAM_DATA_SEED = 104_729

#: Seed of the synthetic pretraining subjects, shared by every method and run seed (the run
#: seed changes initialisation, batch order, views and masks, not the pretraining data).
PRETRAIN_DATA_SEED = 0

#: Subject labels of the synthetic data the classification probes predict.
SYNTHETIC_SUBJECT_LABELS: tuple[str, ...] = ("lesion", "lesion_type", "hemisphere")


@dataclass
class ProbeSet:
    """Downstream subjects in memory, with their split into probe-fitting and test subjects.

    Attributes:
        subject_ids: One id per subject.
        images: float32 ``(N, M, D, H, W)``, or one ``(M, D, H, W)`` per subject where
            their shapes differ (real data).
        masks: bool ``(N, M)`` availability.
        targets: int64 ``(N, D, H, W)`` voxel classes (or one ``(D, H, W)`` per subject).
        class_names: Name of every voxel class (index = class id).
        labels: Subject label name -> one value per subject (``None``: unlabelled).
        train: Indices of the probe-fitting subjects.
        test: Indices of the test subjects.
        modality_names: The modality vocabulary.
        voxel_ml: Volume of a voxel in millilitres.
        description: One line on what the subjects are.
        headline_classes: Classes whose mean Dice is the parcellation headline.
        lesion_class: Class id of the lesion class (``None``: no lesion class).
        headline_name: What the headline classes are (column headers).
        folds: ``(fit, test)`` subject indices of every cross-validation fold (real data);
            ``None``: the one split ``(train, test)``.
        grid: The voxel grid of a real set (:class:`~lightly_topo.benchmark.real_data.Grid`).
    """

    subject_ids: list[str]
    images: Tensor | list[Tensor]
    masks: Tensor
    targets: Tensor | list[Tensor]
    class_names: tuple[str, ...]
    labels: dict[str, list[Any]]
    train: list[int]
    test: list[int]
    modality_names: tuple[str, ...]
    voxel_ml: float
    description: str
    headline_classes: tuple[int, ...] = ()
    lesion_class: int | None = None
    headline_name: str = "Deep grey nuclei"
    folds: list[tuple[list[int], list[int]]] | None = None
    grid: Any = None

    def splits(self) -> list[tuple[list[int], list[int]]]:
        """Every ``(fit, test)`` split the probes run on."""
        return self.folds if self.folds is not None else [(self.train, self.test)]

    def split(self, fold: int | None) -> ProbeSet:
        """This set with the fit and test subjects of ``fold`` (``None``: unchanged)."""
        if fold is None:
            return self
        train, test = self.splits()[fold]
        return dataclasses.replace(self, train=train, test=test)


def synthetic_brains(preset: Preset, n: int, seed: int, id_prefix: str) -> Any:
    """:class:`~lightly_topo.data.synthetic.SyntheticBrains` with the preset's generator
    settings."""
    from lightly_topo.data.synthetic import BENCHMARK_LESIONS, SyntheticBrains

    return SyntheticBrains(
        n,
        size=preset.synthetic_size,
        modalities=preset.modalities,
        seed=seed,
        fov_mm=preset.synthetic_fov_mm,
        lesion=BENCHMARK_LESIONS,
        id_prefix=id_prefix,
    )


def labelled_volumes(brains: Any) -> tuple[Tensor, Tensor]:
    """Images ``(N, M, D, H, W)`` (z-scored as the items are) and parcellation targets
    ``(N, D, H, W)`` of every subject of a :class:`SyntheticBrains`."""
    from lightly_topo.data.preprocess import zscore_foreground
    from lightly_topo.data.synthetic.parcellation import parcellation_map

    images, targets = [], []
    for index in range(len(brains)):
        subject = brains.generate(index)
        foreground = subject.foreground[0].numpy()
        images.append(
            torch.stack(
                [
                    torch.from_numpy(zscore_foreground(subject.images[m][0].numpy(), foreground))
                    for m in brains.modality_names
                ]
            )
        )
        targets.append(parcellation_map(subject.anatomy[0], subject.lesion_map[0]))
    return torch.stack(images).float(), torch.stack(targets)


def synthetic_probe_set(preset: Preset) -> ProbeSet:
    """The synthetic downstream subjects of a preset (see the module docstring)."""
    from lightly_topo.data.synthetic.parcellation import (
        DEEP_GREY_CLASSES,
        LESION_CLASS,
        PARCELLATION_CLASSES,
    )

    n = preset.probe_train_subjects + preset.probe_test_subjects
    brains = synthetic_brains(preset, n, DOWNSTREAM_DATA_SEED, "eval")
    images, targets = labelled_volumes(brains)
    labels = {
        key: [brains.subject_labels(i)[key] for i in range(n)] for key in SYNTHETIC_SUBJECT_LABELS
    }
    spacing = preset.synthetic_fov_mm / preset.synthetic_size
    return ProbeSet(
        subject_ids=[brains.subject_id(i) for i in range(n)],
        images=images,
        masks=torch.ones(n, len(brains.modality_names), dtype=torch.bool),
        targets=targets,
        class_names=PARCELLATION_CLASSES,
        labels=labels,
        train=list(range(preset.probe_train_subjects)),
        test=list(range(preset.probe_train_subjects, n)),
        modality_names=tuple(brains.modality_names),
        voxel_ml=spacing**3 / 1000.0,
        description=(
            f"{n} synthetic brains of {preset.synthetic_size}^3 ({spacing:.1f} mm voxels, "
            f"modalities {', '.join(brains.modality_names)}), {preset.probe_train_subjects} "
            f"to fit the probes and {preset.probe_test_subjects} to test them"
        ),
        headline_classes=tuple(PARCELLATION_CLASSES.index(c) for c in DEEP_GREY_CLASSES),
        lesion_class=LESION_CLASS,
    )


def pretraining_brains(preset: Preset) -> Any:
    """The synthetic pretraining subjects (the same for every method and seed)."""
    return synthetic_brains(preset, preset.pretrain_subjects, PRETRAIN_DATA_SEED, "synth")


def pretraining_table(brains: Any) -> Any:
    """A :class:`~lightly_topo.methods.train.SubjectTable` of the pretraining subjects."""
    from lightly_topo.methods.train import MemoryCachedDataset, SubjectTable

    n = len(brains)
    spacing = brains.config.fov_mm / brains.size
    return SubjectTable(
        dataset=MemoryCachedDataset(brains),
        modality_names=tuple(brains.modality_names),
        subject_ids=[brains.subject_id(i) for i in range(n)],
        availability=np.ones((n, len(brains.modality_names)), dtype=bool),
        labels=[brains.subject_labels(i) for i in range(n)],
        spacing=(spacing, spacing, spacing),
        description=f"{n} synthetic brains of {brains.size}^3, disjoint from the downstream subjects",
    )


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
