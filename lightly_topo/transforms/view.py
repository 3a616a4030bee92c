"""The view format, and turning a dataset item into augmented views."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import torch
from torch import Tensor

from lightly_topo.data.types import VolumeItem
from lightly_topo.transforms.errors import TransformInputError
from lightly_topo.transforms.pipeline import Augment3D, AugmentResult
from lightly_topo.transforms.random import GeneratorLike, RandomState, resolve_generator
from lightly_topo.transforms.spatial import check_label_map


class View(TypedDict):
    """One augmented view of one subject.

    Keys:
        image: float32 ``(M, d, h, w)`` over the dataset's ``modality_names``; a missing
            (or dropped) modality is zero *and* ``False`` in ``mask``.
        mask: bool ``(M,)``: modalities present in this view (never all ``False``).
        grid: float32 ``(3, d, h, w)``: coordinates of every voxel in the subject's
            original volume (see :mod:`lightly_topo.transforms.grid`).
        label_map: int64 ``(1, d, h, w)`` (resampled nearest-neighbour) or ``None``.
        foreground: bool ``(1, d, h, w)``: the subject's brain (voxels where any available
            modality of the item is non-zero) read at the view's grid before intensity
            augmentation; :func:`~lightly_topo.transforms.foreground_tokens` turns it into
            the losses' token ``mask``.
        subject_id: The subject's identifier.
        modality_names: The dataset's modality vocabulary (length M).
    """

    image: Tensor
    mask: Tensor
    grid: Tensor
    label_map: Tensor | None
    foreground: Tensor
    subject_id: str
    modality_names: tuple[str, ...]


def item_channels(item: VolumeItem | Mapping[str, Any]) -> tuple[list[Tensor | None], Tensor]:
    """Check a :class:`~lightly_topo.data.VolumeItem` and return its modalities in
    vocabulary order (``None`` where missing) with its availability mask.

    Raises:
        TransformInputError: A missing key, a mask that disagrees with ``images``, or an
            image that is not float ``(1, D, H, W)`` on a common shape.
    """
    if not isinstance(item, Mapping):
        what = (
            f"a {type(item).__name__} of shape {tuple(item.shape)}"
            if isinstance(item, Tensor)
            else f"a {type(item).__name__}"
        )
        raise TransformInputError(
            f"the 3D transforms take a VolumeItem dict (keys images, mask, modality_names, "
            f"subject_id; what MultiModalVolumeDataset and SyntheticBrains return), got {what}; "
            "wrap a tensor with lightly_topo.data.volume_item(...)"
            if isinstance(item, Tensor)
            else f"the 3D transforms take a VolumeItem dict (keys images, mask, modality_names, "
            f"subject_id; what MultiModalVolumeDataset and SyntheticBrains return), got {what}"
        )
    for key in ("images", "mask", "modality_names", "subject_id"):
        if key not in item:
            raise TransformInputError(
                f"item has no {key!r}; expected a VolumeItem (see lightly_topo.data.types)"
            )
    names = tuple(item["modality_names"])
    mask = item["mask"]
    images = item["images"]
    subject = item["subject_id"]
    if (
        not isinstance(mask, Tensor)
        or mask.dtype != torch.bool
        or tuple(mask.shape) != (len(names),)
    ):
        raise TransformInputError(
            f"subject {subject!r}: mask must be a bool tensor of shape (M,) = ({len(names)},), got "
            f"{tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}"
        )
    unknown = set(images) - set(names)
    if unknown:
        raise TransformInputError(
            f"subject {subject!r}: images has modalities {sorted(unknown)} not in modality_names {names}"
        )
    channels: list[Tensor | None] = []
    shape = None
    for index, name in enumerate(names):
        image = images.get(name)
        if (image is not None) != bool(mask[index]):
            raise TransformInputError(
                f"subject {subject!r}: modality {name!r} is {'present' if image is not None else 'absent'} in images "
                f"but {bool(mask[index])} in mask"
            )
        if image is not None:
            if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[0] != 1:
                got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
                raise TransformInputError(
                    f"subject {subject!r}: images[{name!r}] must have shape (1, D, H, W), got {got}"
                )
            if not image.is_floating_point():
                raise TransformInputError(
                    f"subject {subject!r}: images[{name!r}] must be float32 (1, D, H, W), got dtype {image.dtype}"
                )
            if shape is not None and tuple(image.shape) != shape:
                raise TransformInputError(
                    f"subject {subject!r}: images[{name!r}] has shape {tuple(image.shape)}, other modalities {shape}"
                )
            if min(image.shape[1:]) < 2:
                raise TransformInputError(
                    f"subject {subject!r}: images[{name!r}] needs at least 2 voxels per axis, got {tuple(image.shape)}"
                )
            shape = tuple(image.shape)
            image = image.float()
        channels.append(image)
    if shape is None:
        raise TransformInputError(
            f"subject {subject!r}: no modality is available; a subject needs at least one"
        )
    check_label_map(item.get("label_map"), shape[1:], f"subject {subject!r}: label_map")
    return channels, mask


def to_view(result: AugmentResult, item: VolumeItem | Mapping[str, Any]) -> View:
    """Wrap an augmentation result of ``item`` (with its foreground) as a :class:`View`."""
    if result.foreground is None:
        raise TransformInputError("to_view needs a result of apply_channels(with_foreground=True)")
    return View(
        image=result.image,
        mask=result.mask,
        grid=result.grid,
        label_map=result.label_map,
        foreground=result.foreground,
        subject_id=str(item["subject_id"]),
        modality_names=tuple(item["modality_names"]),
    )


class ViewTransform3D:
    """Turn a :class:`~lightly_topo.data.VolumeItem` into one :class:`View` with an
    :class:`~lightly_topo.transforms.Augment3D` pipeline (one spatial draw shared by all
    modalities and the label map, one intensity draw per modality).

    Args:
        pipeline: The augmentation.
        seed: Seed of the transform's own generator, used when a call passes none.
    """

    def __init__(self, pipeline: Augment3D, seed: int | None = None) -> None:
        self.pipeline = pipeline
        self.random_state = RandomState(seed)

    def __call__(self, item: VolumeItem, generator: GeneratorLike = None) -> View:
        gen = resolve_generator(generator, self.random_state)
        channels, mask = item_channels(item)
        shape = next(c for c in channels if c is not None).shape[1:]
        params = self.pipeline.sample_params(shape, mask, gen)
        result = self.pipeline.apply_channels(
            channels, mask, params, item.get("label_map"), with_foreground=True
        )
        return to_view(result, item)
