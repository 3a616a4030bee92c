"""One augmentation pipeline for one subject: shared spatial draw, per-modality intensity
draws, modality dropout. Parameters are drawn apart from their application so that the
batched path (:class:`~lightly_topo.transforms.BatchAugment3D`) can apply the same ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lightly_topo.transforms.dropout import DropoutParams, RandomModalityDropout, check_mask
from lightly_topo.transforms.errors import TransformInputError
from lightly_topo.transforms.foreground import view_foreground
from lightly_topo.transforms.intensity import IntensityTransform3D
from lightly_topo.transforms.random import GeneratorLike, RandomState, resolve_generator
from lightly_topo.transforms.spatial import (
    Resampler,
    SpatialCompose3D,
    SpatialParams,
    SpatialTransform3D,
    check_label_map,
    check_volume,
)


@dataclass(frozen=True)
class AugmentParams:
    """Everything one subject's augmentation draws.

    Attributes:
        spatial: The spatial draw, shared by every modality and the label map.
        intensity: One parameter set per intensity transform (one value per modality each).
        dropout: Which modalities stay, or ``None`` without modality dropout.
    """

    spatial: SpatialParams
    intensity: tuple[Any, ...]
    dropout: DropoutParams | None


class AugmentResult(NamedTuple):
    """An augmented subject: ``image`` float32 (M, d, h, w), ``mask`` bool (M,), ``grid``
    float32 (3, d, h, w), ``label_map`` int64 (1, d, h, w) or ``None``, ``foreground`` bool
    (1, d, h, w) when asked for, else ``None``."""

    image: Tensor
    mask: Tensor
    grid: Tensor
    label_map: Tensor | None
    foreground: Tensor | None = None


class Augment3D:
    """Spatial transforms (one draw for all modalities), then intensity transforms (one
    draw per modality), then modality dropout; the original volume is resampled once.

    Channels that are missing (``False`` in ``mask``) or dropped are zero in the output.

    Args:
        spatial: Spatial transforms, in order.
        intensity: Intensity transforms, in order.
        dropout: Optional modality dropout.
        seed: Seed of the pipeline's own generator, used when a call passes none.

    >>> from lightly_topo.transforms import RandomCrop3D, RandomScaleShift3D
    >>> aug = Augment3D([RandomCrop3D(4)], [RandomScaleShift3D(p=1.0)])
    >>> out = aug(torch.randn(2, 6, 6, 6), generator=0)
    >>> tuple(out.image.shape), tuple(out.grid.shape), out.mask.tolist()
    ((2, 4, 4, 4), (3, 4, 4, 4), [True, True])
    """

    def __init__(
        self,
        spatial: Sequence[SpatialTransform3D] = (),
        intensity: Sequence[IntensityTransform3D] = (),
        dropout: RandomModalityDropout | None = None,
        seed: int | None = None,
    ) -> None:
        self.spatial = SpatialCompose3D(spatial)
        self.intensity = list(intensity)
        self.dropout = dropout
        self.random_state = RandomState(seed)

    def sample_params(
        self, in_shape: Sequence[int], mask: Tensor, generator: GeneratorLike = None
    ) -> AugmentParams:
        """Draw the parameters for a subject of spatial shape ``in_shape`` whose available
        modalities are ``mask`` (bool (M,))."""
        gen = resolve_generator(generator, self.random_state)
        check_mask(mask)
        spatial = self.spatial.sample_params(in_shape, gen)
        intensity = tuple(t.sample_params(mask.numel(), gen) for t in self.intensity)
        dropout = None if self.dropout is None else self.dropout.sample_params(mask, gen)
        return AugmentParams(spatial, intensity, dropout)

    def apply_channels(
        self,
        channels: Sequence[Tensor | None],
        mask: Tensor,
        params: AugmentParams,
        label_map: Tensor | None = None,
        with_foreground: bool = False,
    ) -> AugmentResult:
        """Like :meth:`apply`, for a list of ``(1, D, H, W)`` channels (``None`` where
        missing), which avoids stacking the full-size volumes.

        With ``with_foreground``, the result also holds the voxels where any channel is
        non-zero, read nearest-neighbour at the output grid before intensity augmentation
        (:func:`~lightly_topo.transforms.foreground.view_foreground`).
        """
        present = [c for c in channels if c is not None]
        if not present:
            raise TransformInputError(
                "channels holds no volume; a subject needs at least one modality"
            )
        ref = present[0]
        out_shape = params.spatial.out_shape
        resampler = Resampler(params.spatial, ref.device)
        image = ref.new_zeros((1, len(channels), *out_shape))
        for index, channel in enumerate(channels):
            if channel is not None and bool(mask[index]):
                image[0, index].copy_(resampler(channel, copy=False)[0])
        foreground = view_foreground(channels, image[0], resampler) if with_foreground else None
        for transform, p in zip(self.intensity, params.intensity):
            image = transform.apply_batch(image, [p])
        keep = mask.to(image.device)[None]
        if self.dropout is not None and params.dropout is not None:
            image, keep = self.dropout.apply_batch(image, keep, [params.dropout])
        if not bool(keep.all()):
            image[~keep] = 0.0
        labels = None if label_map is None else resampler(label_map, mode="nearest")
        return AugmentResult(image[0], keep[0], resampler.grid, labels, foreground)

    def apply(
        self, image: Tensor, mask: Tensor, params: AugmentParams, label_map: Tensor | None = None
    ) -> AugmentResult:
        """Apply ``params`` to ``image`` (M, D, H, W), ``mask`` (M,) and ``label_map``."""
        check_volume(image, "image")
        check_mask(mask, image.shape[0])
        check_label_map(label_map, image.shape[1:])
        if tuple(image.shape[1:]) != params.spatial.in_shape:
            raise TransformInputError(
                f"image has spatial shape {tuple(image.shape[1:])}, the parameters were drawn for {params.spatial.in_shape}"
            )
        return self.apply_channels(list(image[:, None]), mask, params, label_map)

    def __call__(
        self,
        image: Tensor,
        mask: Tensor | None = None,
        label_map: Tensor | None = None,
        generator: GeneratorLike = None,
    ) -> AugmentResult:
        """Augment ``image`` (M, D, H, W); ``mask`` defaults to all modalities available."""
        check_volume(image, "image")
        if mask is None:
            mask = torch.ones(image.shape[0], dtype=torch.bool)
        params = self.sample_params(image.shape[1:], mask, generator)
        return self.apply(image, mask, params, label_map)
