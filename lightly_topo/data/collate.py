"""Batching of :class:`~lightly_topo.data.VolumeItem` dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

_ITEM_KEYS = {
    "subject_id",
    "session",
    "images",
    "mask",
    "modality_names",
    "label_map",
    "labels",
    "affine",
}


def collate_subjects(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack dataset items into one batch (``collate_fn`` for a ``DataLoader``).

    Returns a dict with:

    * ``image``: float32 ``(B, M, D, H, W)``, channel ``m`` holding modality
      ``modality_names[m]``; a missing modality's channel is zero *and* ``mask`` says so
      (code never reads a masked channel);
    * ``mask``: bool ``(B, M)``;
    * ``label_map``: int64 ``(B, 1, D, H, W)`` if every item has one, else ``None``;
    * ``subject_id``, ``session``: lists;
    * ``labels``: dict of lists over the union of the items' label names (``None`` where an
      item lacks one);
    * ``affine``: float64 ``(B, 4, 4)``;
    * ``modality_names``: the shared vocabulary;
    * any other key the items carry (e.g. added by a transform), batched with
      ``torch.utils.data.default_collate``.

    Raises:
        ValueError: No items, items with different ``modality_names``, or images of
            different spatial shapes (crop or resize them to one shape with a transform first).

    >>> item = {"subject_id": "a", "session": None, "images": {"t1": torch.ones(1, 2, 2, 2)},
    ...         "mask": torch.tensor([True, False]), "modality_names": ("t1", "t2"),
    ...         "label_map": None, "labels": {"age": 40}, "affine": torch.eye(4, dtype=torch.float64)}
    >>> batch = collate_subjects([item, item])
    >>> tuple(batch["image"].shape), batch["mask"].tolist(), batch["labels"]
    ((2, 2, 2, 2, 2), [[True, False], [True, False]], {'age': [40, 40]})
    """
    if len(items) == 0:
        raise ValueError("collate_subjects: got no items")
    names = tuple(items[0]["modality_names"])
    shape: tuple[int, ...] | None = None
    for item in items:
        if tuple(item["modality_names"]) != names:
            raise ValueError(
                f"collate_subjects: subject {item['subject_id']!r} has modality_names "
                f"{tuple(item['modality_names'])}, expected {names} (items of one dataset share them)"
            )
        for m, img in item["images"].items():
            if img.ndim != 4 or img.shape[0] != 1:
                raise ValueError(
                    f"collate_subjects: subject {item['subject_id']!r}, modality {m!r}: expected a "
                    f"(1, D, H, W) tensor, got {tuple(img.shape)}"
                )
            if shape is None:
                shape = tuple(img.shape[1:])
            elif tuple(img.shape[1:]) != shape:
                raise ValueError(
                    f"collate_subjects: subject {item['subject_id']!r}, modality {m!r} has spatial "
                    f"shape {tuple(img.shape[1:])}, another item has {shape}; crop or resize to one "
                    "shape (a transform) before batching"
                )
    if shape is None:
        raise ValueError("collate_subjects: no item has any image")
    b, n = len(items), len(names)
    image = torch.zeros((b, n, *shape), dtype=torch.float32)
    for i, item in enumerate(items):
        for m, img in item["images"].items():
            image[i, names.index(m)] = img[0]
    label_map = None
    if all(item["label_map"] is not None for item in items):
        label_map = torch.stack([item["label_map"].to(torch.int64) for item in items])
        if tuple(label_map.shape[2:]) != shape:
            raise ValueError(
                f"collate_subjects: label maps have shape {tuple(label_map.shape[2:])}, images {shape}"
            )
    label_names: list[str] = []
    for item in items:
        label_names += [k for k in item["labels"] if k not in label_names]
    batch: dict[str, Any] = {
        "image": image,
        "mask": torch.stack([torch.as_tensor(item["mask"], dtype=torch.bool) for item in items]),
        "label_map": label_map,
        "subject_id": [item["subject_id"] for item in items],
        "session": [item.get("session") for item in items],
        "labels": {k: [item["labels"].get(k) for item in items] for k in label_names},
        "affine": torch.stack(
            [torch.as_tensor(item["affine"], dtype=torch.float64) for item in items]
        ),
        "modality_names": names,
    }
    for key in items[0]:
        if key not in _ITEM_KEYS:
            batch[key] = default_collate([item[key] for item in items])
    return batch
