"""Batching lists of views."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import torch
from torch import Tensor

from lightly_topo.transforms.errors import TransformInputError
from lightly_topo.transforms.view import View


class ViewBatch(TypedDict):
    """A batch of views: ``image`` float32 (B, M, d, h, w), ``mask`` bool (B, M), ``grid``
    float32 (B, 3, d, h, w), ``label_map`` int64 (B, 1, d, h, w) or ``None`` (``None``
    unless every view has one), ``foreground`` bool (B, 1, d, h, w), ``subject_id`` list of
    str, ``modality_names``."""

    image: Tensor
    mask: Tensor
    grid: Tensor
    label_map: Tensor | None
    foreground: Tensor
    subject_id: list[str]
    modality_names: tuple[str, ...]


def collate_views(batch: Sequence[Sequence[View]]) -> list[ViewBatch]:
    """Collate the outputs of a view transform (one list of views per subject) into one
    :class:`ViewBatch` per view index: the ``collate_fn`` for a DataLoader over a dataset
    whose transform is e.g. :class:`~lightly_topo.transforms.SimCLRTransform3D` (Lightly's
    ``MultiViewCollate`` only stacks tensors).

    Raises:
        TransformInputError: Subjects with different numbers of views, or views at one
            index with different shapes or vocabularies.

    >>> views = [{"image": torch.zeros(2, 4, 4, 4), "mask": torch.tensor([True, False]),
    ...           "grid": torch.zeros(3, 4, 4, 4), "label_map": None,
    ...           "foreground": torch.ones(1, 4, 4, 4, dtype=torch.bool), "subject_id": "s",
    ...           "modality_names": ("t1", "t2")}]
    >>> out = collate_views([views, views])
    >>> len(out), tuple(out[0]["image"].shape), out[0]["subject_id"]
    (1, (2, 2, 4, 4, 4), ['s', 's'])
    """
    if len(batch) == 0:
        raise TransformInputError("collate_views got an empty batch")
    num_views = len(batch[0])
    if any(len(views) != num_views for views in batch):
        raise TransformInputError(
            f"every subject must have the same number of views, got {[len(v) for v in batch]}"
        )
    out: list[ViewBatch] = []
    for index in range(num_views):
        views = [subject[index] for subject in batch]
        names = tuple(views[0]["modality_names"])
        if any(tuple(v["modality_names"]) != names for v in views):
            raise TransformInputError(f"view {index}: subjects have different modality_names")
        shapes = {tuple(v["image"].shape) for v in views}
        if len(shapes) != 1:
            raise TransformInputError(
                f"view {index}: images have different shapes {sorted(shapes)}; use a fixed crop size"
            )
        labels = [v["label_map"] for v in views]
        out.append(
            ViewBatch(
                image=torch.stack([v["image"] for v in views]),
                mask=torch.stack([v["mask"] for v in views]),
                grid=torch.stack([v["grid"] for v in views]),
                label_map=None if any(lbl is None for lbl in labels) else torch.stack(labels),  # type: ignore[arg-type]
                foreground=torch.stack([v["foreground"] for v in views]),
                subject_id=[v["subject_id"] for v in views],
                modality_names=names,
            )
        )
    return out
