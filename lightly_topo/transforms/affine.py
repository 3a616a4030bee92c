"""Random affine transforms (rotation, scaling, shear, translation) about the volume centre."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lightly_topo.transforms.grid import Shape3
from lightly_topo.transforms.random import bernoulli, check_probability, uniform
from lightly_topo.transforms.spatial import SpatialStep, SpatialTransform3D


def _ranges(
    value: float | Sequence[float], name: str, centre: float = 0.0
) -> list[tuple[float, float]]:
    """Three ``(low, high)`` ranges from a half-width or three half-widths around ``centre``."""
    values = [float(value)] * 3 if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != 3 or any(v < 0 for v in values):
        raise ValueError(f"{name} must be a non-negative number or three of them, got {value!r}")
    return [(centre - v, centre + v) for v in values]


def _rotation(angles: Sequence[float]) -> torch.Tensor:
    """Rotation matrix: about axis 0, then axis 1, then axis 2 (radians)."""
    out = torch.eye(3, dtype=torch.float64)
    for axis, angle in enumerate(angles):
        c, s = math.cos(angle), math.sin(angle)
        a, b = [i for i in range(3) if i != axis]
        r = torch.eye(3, dtype=torch.float64)
        r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
        out = r @ out
    return out


class RandomAffine3D(SpatialTransform3D):
    """With probability ``p``, a random affine map about the centre of the volume; the
    output keeps the input's shape and samples it trilinearly (zeros outside).

    The forward map sends input point ``x`` to ``R @ Sh @ S @ (x - c) + c + t``: ``S``
    scales by factors drawn from ``1 +- scale`` (one factor for all axes if ``isotropic``,
    a factor > 1 enlarges the anatomy), ``Sh`` is upper triangular with three shear
    factors from ``+-shear``, ``R`` rotates by angles from ``+-degrees`` about the D, H and
    W axes, ``t`` translates by ``+-translate`` voxels and ``c`` is the volume centre.

    Args:
        degrees: Rotation half-range in degrees (one value or one per axis).
        scale: Scaling half-range around 1.
        shear: Shear half-range.
        translate: Translation half-range in voxels (one value or one per axis).
        isotropic: One scale factor for all axes.
        p: Probability of applying the transform.
        seed: Seed of the transform's own generator.
    """

    def __init__(
        self,
        degrees: float | Sequence[float] = 15.0,
        scale: float | Sequence[float] = 0.1,
        shear: float = 0.0,
        translate: float | Sequence[float] = 0.0,
        isotropic: bool = False,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.degrees = _ranges(degrees, "degrees")
        self.scale = _ranges(scale, "scale", centre=1.0)
        if self.scale[0][0] <= 0 or any(lo <= 0 for lo, _ in self.scale):
            raise ValueError(f"scale half-range must be below 1, got {scale!r}")
        self.shear = _ranges(shear, "shear")
        self.translate = _ranges(translate, "translate")
        self.isotropic = isotropic
        self.p = check_probability("p", p)

    def forward_matrix(self, in_shape: Shape3, generator: torch.Generator) -> torch.Tensor:
        """Draw the forward (input to output) ``(4, 4)`` matrix."""
        angles = [math.radians(float(uniform(generator, lo, hi))) for lo, hi in self.degrees]
        factors = [float(uniform(generator, lo, hi)) for lo, hi in self.scale]
        if self.isotropic:
            factors = [factors[0]] * 3
        shears = [float(uniform(generator, lo, hi)) for lo, hi in self.shear]
        shift = [float(uniform(generator, lo, hi)) for lo, hi in self.translate]
        sh = torch.eye(3, dtype=torch.float64)
        sh[0, 1], sh[0, 2], sh[1, 2] = shears
        linear = _rotation(angles) @ sh @ torch.diag(torch.tensor(factors, dtype=torch.float64))
        centre = torch.tensor([(n - 1) / 2 for n in in_shape], dtype=torch.float64)
        m = torch.eye(4, dtype=torch.float64)
        m[:3, :3] = linear
        m[:3, 3] = centre - linear @ centre + torch.tensor(shift, dtype=torch.float64)
        return m

    def sample_step(self, in_shape: Shape3, generator: torch.Generator) -> SpatialStep:
        apply = bool(bernoulli(generator, self.p))
        forward = self.forward_matrix(in_shape, generator)
        m = torch.linalg.inv(forward) if apply else torch.eye(4, dtype=torch.float64)
        return SpatialStep(in_shape, in_shape, m)
