"""The batched device path: augment a whole batch on the accelerator in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import torch
from torch import Tensor, nn

from lightly_topo.transforms.dropout import RandomModalityDropout
from lightly_topo.transforms.errors import TransformInputError
from lightly_topo.transforms.grid import sample
from lightly_topo.transforms.intensity import IntensityTransform3D
from lightly_topo.transforms.pipeline import Augment3D, AugmentParams
from lightly_topo.transforms.random import GeneratorLike, resolve_generator
from lightly_topo.transforms.spatial import SpatialTransform3D, batch_grid


class BatchViews(TypedDict):
    """Output of :class:`BatchAugment3D`: ``image`` float32 (B, M, d, h, w), ``mask`` bool
    (B, M), ``grid`` float32 (B, 3, d, h, w), ``label_map`` int64 (B, 1, d, h, w) or ``None``."""

    image: Tensor
    mask: Tensor
    grid: Tensor
    label_map: Tensor | None


class BatchAugment3D(nn.Module):
    """The transforms of :class:`~lightly_topo.transforms.Augment3D` on a whole batch
    ``(B, M, D, H, W)``, on the batch's device.

    Parameters are drawn per subject on the CPU (:meth:`sample_params`, a few scalars
    each); the heavy work is batched: one grid for the whole batch (matrix products, plus
    one ``grid_sample`` per elastic step), one ``grid_sample`` of all subjects and
    modalities, and intensity transforms vectorised over subjects and modalities. Given the
    same parameters, :meth:`apply_params` and ``Augment3D.apply`` on each subject agree within
    interpolation tolerance (crops, flips and 90-degree rotations are exact on the CPU
    path and trilinear at integer positions here).

    Args:
        spatial: Spatial transforms; every subject must reach the same output shape.
        intensity: Intensity transforms.
        dropout: Optional modality dropout.
        seed: Seed of the parameter generator, used when a call passes none.

    >>> from lightly_topo.transforms import RandomCrop3D, RandomFlip3D
    >>> aug = BatchAugment3D([RandomCrop3D(4), RandomFlip3D(p=0.5)])
    >>> out = aug(torch.randn(2, 3, 6, 6, 6), generator=0)
    >>> tuple(out["image"].shape), tuple(out["grid"].shape)
    ((2, 3, 4, 4, 4), (2, 3, 4, 4, 4))
    """

    def __init__(
        self,
        spatial: Sequence[SpatialTransform3D] = (),
        intensity: Sequence[IntensityTransform3D] = (),
        dropout: RandomModalityDropout | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.pipeline = Augment3D(spatial, intensity, dropout, seed=seed)

    @staticmethod
    def _check(image: Tensor, mask: Tensor | None, label_map: Tensor | None) -> Tensor:
        if not isinstance(image, Tensor) or image.dim() != 5 or not image.is_floating_point():
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            dtype = image.dtype if isinstance(image, Tensor) else None
            raise TransformInputError(
                f"image must be a float32 tensor of shape (B, M, D, H, W), got {shape} ({dtype})"
            )
        b, m = image.shape[:2]
        if mask is None:
            mask = torch.ones(b, m, dtype=torch.bool, device=image.device)
        if mask.shape != (b, m) or mask.dtype != torch.bool:
            raise TransformInputError(
                f"mask must be a bool tensor of shape (B, M) = {(b, m)}, got {tuple(mask.shape)} ({mask.dtype})"
            )
        if not bool(mask.any(1).all()):
            raise TransformInputError(
                "mask has a subject with no available modality; each needs at least one"
            )
        if label_map is not None and (
            label_map.dim() != 5
            or tuple(label_map.shape) != (b, 1, *image.shape[2:])
            or label_map.is_floating_point()
        ):
            raise TransformInputError(
                f"label_map must be an int64 tensor of shape (B, 1, D, H, W) = {(b, 1, *image.shape[2:])}, got {tuple(label_map.shape)} ({label_map.dtype})"
            )
        return mask

    def sample_params(
        self,
        image_shape: Sequence[int],
        mask: Tensor | None = None,
        generator: GeneratorLike = None,
    ) -> list[AugmentParams]:
        """Draw one parameter set per subject of a batch of shape ``(B, M, D, H, W)``."""
        b, m = int(image_shape[0]), int(image_shape[1])
        gen = resolve_generator(generator, self.pipeline.random_state)
        masks = torch.ones(b, m, dtype=torch.bool) if mask is None else mask.cpu()
        return [
            self.pipeline.sample_params(tuple(image_shape[2:]), masks[i], gen) for i in range(b)
        ]

    def apply_params(
        self,
        image: Tensor,
        params: Sequence[AugmentParams],
        mask: Tensor | None = None,
        label_map: Tensor | None = None,
    ) -> BatchViews:
        """Apply per-subject ``params`` to ``image`` (B, M, D, H, W)."""
        mask = self._check(image, mask, label_map)
        if len(params) != image.shape[0]:
            raise TransformInputError(
                f"got {len(params)} parameter sets for a batch of {image.shape[0]}"
            )
        if any(p.spatial.in_shape != tuple(image.shape[2:]) for p in params):
            raise TransformInputError(
                f"image has spatial shape {tuple(image.shape[2:])}, the parameters were drawn for {params[0].spatial.in_shape}"
            )
        grid = batch_grid([p.spatial for p in params], image.device)
        out = sample(image, grid)
        for index, transform in enumerate(self.pipeline.intensity):
            out = transform.apply_batch(out, [p.intensity[index] for p in params])
        keep = mask
        dropout = self.pipeline.dropout
        if dropout is not None:
            out, keep = dropout.apply_batch(out, keep, [p.dropout for p in params])  # type: ignore[misc]
        out = out * keep[:, :, None, None, None].to(out.dtype)
        labels = None if label_map is None else sample(label_map, grid, mode="nearest")
        return BatchViews(image=out, mask=keep, grid=grid, label_map=labels)

    def forward(
        self,
        image: Tensor,
        mask: Tensor | None = None,
        label_map: Tensor | None = None,
        generator: GeneratorLike = None,
    ) -> BatchViews:
        """Draw parameters and augment ``image`` (B, M, D, H, W) with ``mask`` (B, M)."""
        mask = self._check(image, mask, label_map)
        params = self.sample_params(image.shape, mask, generator)
        return self.apply_params(image, params, mask, label_map)
