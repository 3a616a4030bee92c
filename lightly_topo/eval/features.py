"""Frozen-encoder features for probes: dense per-modality maps and pooled subject vectors.

A frozen encoder runs once per subject (:func:`encode`); the probes
(:mod:`lightly_topo.eval.probes`) read

* **dense** features: every level of :meth:`MultiModalEncoder.forward_modalities`,
  trilinearly upsampled to the finest level's grid and stacked along channels, per modality
  ``(M, F, g, g, g)``, plus the input intensity itself at full resolution (a hypercolumn:
  the levels say what surrounds a voxel, the intensity what the voxel is; without it, a
  stride-2 encoder would lose to its own input on small bright structures). A voxel's
  features are the grid trilinearly interpolated at the voxel centre and its intensity
  (:func:`sample_voxels`); a voxel's probe input is either the modalities' features side by
  side (``M * (F + 1)``, "per modality") or their mean over the available modalities
  (``F + 1``, "fused", :func:`fuse`). Interpolation and a linear probe commute, so a
  probe's voxel logits are computed on the grid, interpolated once and added to the
  intensity term (:func:`voxel_logits`), the same numbers as interpolating every feature
  first;
* **pooled** features: per modality and level, the mean and the maximum over the volume
  and the mean over each of its eight octants (the octants keep where something is, e.g.
  which hemisphere), side by side.

:class:`IntensityEncoder` stands in for an encoder to give the raw-intensity floor: it has no
level, so the probes see the intensities alone.

>>> import torch
>>> encoder = IntensityEncoder(num_modalities=2)
>>> image, mask = torch.rand(1, 2, 8, 8, 8), torch.ones(1, 2, dtype=torch.bool)
>>> encoded = encode(encoder, image, mask)
>>> tuple(encoded.grid.shape), tuple(encoded.image.shape), tuple(encoded.pooled.shape)
((2, 0, 8, 8, 8), (2, 1, 8, 8, 8), (20,))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Pooled statistics per channel: mean, max and the eight octant means.
POOLED_PER_CHANNEL = 10


class IntensityEncoder(nn.Module):
    """The raw-intensity "encoder": no feature level, so probes read the intensities only.

    Its pooled features are the pooled intensities (mean, max and octant means per modality).

    Args:
        num_modalities: ``M``, the size of the modality vocabulary.
    """

    mode = "shared"

    def __init__(self, num_modalities: int) -> None:
        super().__init__()
        self.num_modalities = int(num_modalities)
        self.feature_channels: tuple[int, ...] = ()
        self.feature_strides: tuple[int, ...] = ()

    def forward_modalities(self, image: Tensor, mask: Tensor) -> list[Tensor]:
        """No level."""
        return []


@dataclass
class Encoded:
    """What probes read of one subject.

    Attributes:
        grid: float32 ``(M, F, g, g, g)`` dense features at the finest level's grid (zero
            for a missing modality; ``F = 0`` and ``g`` the voxel grid for
            :class:`IntensityEncoder`).
        image: float32 ``(M, 1, D, H, W)`` input intensities (zero for a missing modality).
        pooled: float32 ``(M * POOLED_PER_CHANNEL * (F or 1),)`` pooled features (of the
            intensities for :class:`IntensityEncoder`).
        size: The voxel grid ``(D, H, W)`` of the input.
    """

    grid: Tensor
    image: Tensor
    pooled: Tensor
    size: tuple[int, int, int]


def encode(encoder: Any, image: Tensor, mask: Tensor, dense: bool = True) -> Encoded:
    """Run a frozen encoder on one subject and keep its dense and pooled features.

    Args:
        encoder: A shared-mode :class:`~lightly_topo.models.MultiModalEncoder` (or
            :class:`IntensityEncoder`), in eval mode.
        image: One subject ``(1, M, D, H, W)``.
        mask: Its availability ``(1, M)`` bool; missing modalities give zero features.
        dense: Build the dense grid; ``False`` leaves ``grid`` empty (``(M, 0, ...)``) for
            a subject that only the pooled probes read.
    """
    intensities = (image[0] * mask[0, :, None, None, None].to(image.dtype)).float().unsqueeze(1)
    with torch.no_grad():
        levels = [level[0].float() for level in encoder.forward_modalities(image, mask)]
    size = tuple(int(s) for s in image.shape[2:])
    if not levels:
        return Encoded(
            grid=intensities[:, :0],
            image=intensities,
            pooled=_pooled([intensities]),
            size=(size[0], size[1], size[2]),
        )
    finest = tuple(int(s) for s in levels[0].shape[2:])
    maps = [levels[0][:, :0]]
    for level in levels if dense else []:
        if tuple(level.shape[2:]) != finest:
            level = F.interpolate(level, size=finest, mode="trilinear", align_corners=False)
        maps.append(level)
    return Encoded(
        grid=torch.cat(maps, dim=1),
        image=intensities,
        pooled=_pooled(levels),
        size=(size[0], size[1], size[2]),
    )


def _pooled(levels: list[Tensor]) -> Tensor:
    parts = []
    for level in levels:
        m, c = level.shape[:2]
        flat = level.reshape(m, c, -1)
        octants = F.adaptive_avg_pool3d(level, 2).reshape(m, c, 8)
        stats = [flat.mean(-1, keepdim=True), flat.amax(-1, keepdim=True), octants]
        parts.append(torch.cat(stats, -1).reshape(m, -1))
    return torch.cat(parts, dim=1).reshape(-1)


def fuse(features: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``(M, F, ...)`` features over the modalities available in ``mask`` ``(M,)``."""
    weights = mask.to(features.dtype)
    shape = (-1,) + (1,) * (features.ndim - 1)
    return (features * weights.view(shape)).sum(0) / weights.sum().clamp_min(1)


def _normalised(voxels: Tensor, size: tuple[int, int, int]) -> Tensor:
    # Voxel centre i of n maps to (2i + 1) / n - 1: with align_corners=False this is the
    # same sampling point as F.interpolate from the grid to the voxel size.
    scale = torch.tensor(size, dtype=torch.float32)
    return (2 * voxels.float() + 1) / scale - 1


def sample_voxels(
    grid: Tensor, voxels: Tensor, size: tuple[int, int, int], image: Tensor | None = None
) -> Tensor:
    """Features of the given voxels: ``(N, C)`` from a ``(C, g, g, g)`` grid, followed by
    the voxels' intensities where ``image`` is given.

    Args:
        grid: Features on the grid (channels first; ``(M, F, ...)`` is flattened to
            ``M * F`` channels).
        voxels: int ``(N, 3)`` voxel indices ``(d, h, w)`` in the input's grid ``size``.
        size: The voxel grid.
        image: Intensities ``(M, 1, D, H, W)`` or ``(1, D, H, W)`` at the voxel grid.
    """
    if image is not None:
        features = sample_voxels(grid, voxels, size)
        values = image.reshape(-1, *image.shape[-3:])[:, voxels[:, 0], voxels[:, 1], voxels[:, 2]]
        return torch.cat([features, values.T], dim=1)
    channels = grid.reshape(-1, *grid.shape[-3:])
    if channels.shape[0] == 0:
        return channels.new_zeros((len(voxels), 0))
    if tuple(channels.shape[-3:]) == tuple(size):
        return channels[:, voxels[:, 0], voxels[:, 1], voxels[:, 2]].T.contiguous()
    # grid_sample takes (x, y, z) = (w, h, d).
    points = _normalised(voxels, size).flip(-1).view(1, -1, 1, 1, 3)
    sampled = F.grid_sample(
        channels[None], points, mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled[0, :, :, 0, 0].T.contiguous()


def voxel_logits(
    grid: Tensor,
    weight: Tensor,
    bias: Tensor,
    size: tuple[int, int, int],
    image: Tensor | None = None,
) -> Tensor:
    """Logits ``(K, D, H, W)`` of a linear probe ``weight`` ``(K, C)``, ``bias`` ``(K,)`` on
    a ``(C, g, g, g)`` grid (or ``(M, F, ...)``, flattened), interpolated to ``size``; with
    ``image`` (``(M, 1, D, H, W)``), its last ``M`` weight columns act on the intensities."""
    channels = grid.reshape(-1, *grid.shape[-3:])
    c = channels.shape[0]
    logits = bias.view(-1, 1, 1, 1).expand(-1, *size)
    if c:
        coarse = torch.einsum("kc,cdhw->kdhw", weight[:, :c], channels)
        if tuple(coarse.shape[-3:]) != tuple(size):
            coarse = F.interpolate(coarse[None], size=size, mode="trilinear", align_corners=False)[
                0
            ]
        logits = logits + coarse
    if image is not None:
        values = image.reshape(-1, *image.shape[-3:])
        logits = logits + torch.einsum("kc,cdhw->kdhw", weight[:, c:], values)
    return logits
