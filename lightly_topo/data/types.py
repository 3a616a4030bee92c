"""The records that the data layer hands to the rest of the package.

A :class:`Subject` describes what is on disk (files per modality, optional label map and
subject-level labels). A dataset item (:class:`VolumeItem`) is what
:class:`~lightly_topo.data.MultiModalVolumeDataset` and
:class:`~lightly_topo.data.SyntheticBrains` return for one subject, after decoding and
preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from torch import Tensor

#: A subject-level label: a number or a category.
LabelValue = float | int | str


@dataclass(frozen=True)
class ModalityFile:
    """One image file of one subject.

    Attributes:
        modality: Canonical modality name (see :data:`lightly_topo.data.MODALITIES`).
        path: The file on disk.
        channel: For 4D files whose last axis holds several modalities (Medical
            Segmentation Decathlon), the index of this modality; ``None`` for 3D files.
    """

    modality: str
    path: Path
    channel: int | None = None


@dataclass
class Subject:
    """A subject (or one session of a subject) as found on disk.

    Attributes:
        subject_id: Identifier, unique within a dataset (with ``session``).
        images: Files per canonical modality name.
        session: Session identifier, or ``None`` for single-session layouts.
        label_map: Voxel label map on the images' grid, or ``None``.
        labels: Subject-level labels (numbers or categories), e.g. ``{"grade": 2}``.
        dataset: Name of the dataset the subject comes from (for multi-dataset corpora).
    """

    subject_id: str
    images: dict[str, ModalityFile]
    session: str | None = None
    label_map: Path | None = None
    labels: dict[str, LabelValue] = field(default_factory=dict)
    dataset: str | None = None

    @property
    def key(self) -> str:
        """``subject_id`` or ``subject_id/session``: unique within a dataset."""
        return self.subject_id if self.session is None else f"{self.subject_id}/{self.session}"

    @property
    def modalities(self) -> tuple[str, ...]:
        """The canonical modality names this subject has."""
        return tuple(self.images)


class VolumeItem(TypedDict):
    """One preprocessed subject, as returned by the datasets.

    Keys:
        subject_id: The subject's identifier (positives in SSL are defined by it).
        session: The session, or ``None``.
        images: One float32 tensor of shape (1, D, H, W) per *available* modality, keyed
            by canonical name, in the order of ``modality_names``. A missing modality is
            absent here and ``False`` in ``mask``; it is never replaced by zeros.
        mask: Bool tensor of shape (M,): availability over ``modality_names``.
        modality_names: The dataset's modality vocabulary (length M).
        label_map: int64 tensor of shape (1, D, H, W), or ``None``.
        labels: Subject-level labels.
        affine: float64 tensor of shape (4, 4): voxel to world (RAS+, mm).
    """

    subject_id: str
    session: str | None
    images: dict[str, Tensor]
    mask: Tensor
    modality_names: tuple[str, ...]
    label_map: Tensor | None
    labels: dict[str, LabelValue]
    affine: Tensor


def volume_item(
    image: Tensor,
    modality_names: Sequence[str],
    subject_id: str = "subject",
    mask: Tensor | None = None,
    label_map: Tensor | None = None,
) -> VolumeItem:
    """A :class:`VolumeItem` from a plain tensor (for the 3D transforms outside a dataset).

    Args:
        image: float ``(M, D, H, W)``, one channel per modality of ``modality_names``.
        modality_names: The modality of every channel.
        subject_id: The subject's identifier.
        mask: bool ``(M,)`` availability (``None``: every modality available); a missing
            modality's channel is left out of ``images``.
        label_map: int ``(D, H, W)`` or ``(1, D, H, W)`` voxel labels, or ``None``.

    Raises:
        ValueError: ``image`` is not ``(M, D, H, W)`` with one channel per modality.

    >>> import torch
    >>> item = volume_item(torch.zeros(2, 8, 8, 8), ("t1", "flair"))
    >>> sorted(item["images"]), tuple(item["images"]["t1"].shape), item["mask"].tolist()
    (['flair', 't1'], (1, 8, 8, 8), [True, True])
    """
    import torch

    names = tuple(modality_names)
    if image.ndim != 4 or image.shape[0] != len(names):
        raise ValueError(
            f"volume_item: image must be (M, D, H, W) with M = {len(names)} modalities "
            f"{names}, got shape {tuple(image.shape)}"
        )
    available = torch.ones(len(names), dtype=torch.bool) if mask is None else mask.bool()
    labels = None if label_map is None else label_map.long().reshape(1, *image.shape[1:])
    return VolumeItem(
        subject_id=subject_id,
        session=None,
        images={n: image[m : m + 1].float() for m, n in enumerate(names) if available[m]},
        mask=available,
        modality_names=names,
        label_map=labels,
        labels={},
        affine=torch.eye(4, dtype=torch.float64),
    )
