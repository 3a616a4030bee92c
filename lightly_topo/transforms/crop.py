"""Random and centre crops, plain and resized, that return voxel-coordinate grids."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lightly_topo.transforms.grid import Shape3, as_shape3
from lightly_topo.transforms.random import randint, uniform
from lightly_topo.transforms.spatial import SpatialStep, SpatialTransform3D


def _translation(shift: Sequence[float], scale: Sequence[float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
    m = torch.eye(4, dtype=torch.float64)
    for a in range(3):
        m[a, a] = float(scale[a])
        m[a, 3] = float(shift[a])
    return m


class RandomCrop3D(SpatialTransform3D):
    """Crop a random box of ``size`` voxels (no interpolation).

    Along an axis where the volume is larger than ``size`` the start is uniform in
    ``[0, S - size]``. Where it is *smaller*, the crop is padded with zeros (zero label):
    the volume is placed at a uniform integer offset inside the crop, so the whole volume
    is kept and the grid of the padded voxels lies outside ``[0, S - 1]``.

    Args:
        size: Output size ``(d, h, w)`` (an int for a cube).
        seed: Seed of the transform's own generator.

    >>> out = RandomCrop3D(4)(torch.zeros(1, 8, 8, 8), generator=0)
    >>> tuple(out.image.shape)
    (1, 4, 4, 4)
    """

    def __init__(self, size: int | Sequence[int], seed: int | None = None) -> None:
        super().__init__(seed)
        self.size = as_shape3(size)

    def sample_step(self, in_shape: Shape3, generator: torch.Generator) -> SpatialStep:
        start = [
            randint(generator, 0, n - s) if n >= s else randint(generator, n - s, 0)
            for n, s in zip(in_shape, self.size)
        ]
        return SpatialStep(in_shape, self.size, _translation(start))


class CenterCrop3D(SpatialTransform3D):
    """Crop the central box of ``size`` voxels (zero padding where the volume is smaller).

    The start along each axis is ``(S - size) // 2`` (negative where padding).

    Args:
        size: Output size ``(d, h, w)`` (an int for a cube).
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        super().__init__(0)
        self.size = as_shape3(size)

    def sample_step(self, in_shape: Shape3, generator: torch.Generator) -> SpatialStep:
        start = [(n - s) // 2 for n, s in zip(in_shape, self.size)]
        return SpatialStep(in_shape, self.size, _translation(start))


class RandomResizedCrop3D(SpatialTransform3D):
    """Crop a random box and resize it (trilinear) to ``size``: the 3D
    ``torchvision.transforms.RandomResizedCrop``.

    The box has integer extents ``(e_d, e_h, e_w)`` with volume ``scale * D * H * W``,
    ``scale ~ U(scale)``, and aspect ratios ``e_h / e_d`` and ``e_w / e_d`` each log-uniform
    in ``ratio``; its start is uniform among the positions inside the volume. After 10 draws
    that do not fit, the whole volume is used. Output voxel ``j`` samples the input at
    ``start - 0.5 + (j + 0.5) * e / size`` (voxel-centre convention of
    ``interpolate(..., align_corners=False)``); no anti-aliasing.

    Args:
        size: Output size ``(d, h, w)``.
        scale: Range of the box volume as a fraction of the input volume.
        ratio: Range of the two aspect ratios.
        seed: Seed of the transform's own generator.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must satisfy 0 < min <= max, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        self.size = as_shape3(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))

    def _extent(self, in_shape: Shape3, generator: torch.Generator) -> tuple[list[int], list[int]]:
        total = in_shape[0] * in_shape[1] * in_shape[2]
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            volume = total * float(uniform(generator, *self.scale))
            r_h = math.exp(float(uniform(generator, log_lo, log_hi)))
            r_w = math.exp(float(uniform(generator, log_lo, log_hi)))
            e_d = (volume / (r_h * r_w)) ** (1 / 3)
            extent = [round(e_d), round(e_d * r_h), round(e_d * r_w)]
            if all(1 <= e <= n for e, n in zip(extent, in_shape)):
                start = [randint(generator, 0, n - e) for n, e in zip(in_shape, extent)]
                return extent, start
        return list(in_shape), [0, 0, 0]

    def sample_step(self, in_shape: Shape3, generator: torch.Generator) -> SpatialStep:
        extent, start = self._extent(in_shape, generator)
        scale = [e / s for e, s in zip(extent, self.size)]
        shift = [b - 0.5 + 0.5 * f for b, f in zip(start, scale)]
        return SpatialStep(in_shape, self.size, _translation(shift, scale))
