"""Random elastic deformation from a coarse grid of random displacements."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lightly_topo.transforms.grid import Shape3, as_shape3
from lightly_topo.transforms.random import bernoulli, check_probability, uniform
from lightly_topo.transforms.spatial import SpatialStep, SpatialTransform3D


class RandomElastic3D(SpatialTransform3D):
    """With probability ``p``, deform the volume by a smooth random displacement field.

    Displacements (in voxels) are drawn uniformly in ``+-max_displacement`` at
    ``num_control_points`` control points per axis spanning the volume (corner points on
    corner voxels) and interpolated trilinearly to every voxel; output voxel ``x`` reads the
    input at ``x + u(x)``. With ``locked_borders`` the outermost control points do not move.
    Keep ``max_displacement`` below half the control-point spacing to avoid folding.

    Args:
        num_control_points: Control points per axis (at least 4, or three values).
        max_displacement: Largest displacement in voxels (one value or one per axis).
        locked_borders: Keep the outermost control points still.
        p: Probability of applying the deformation.
        seed: Seed of the transform's own generator.
    """

    def __init__(
        self,
        num_control_points: int | Sequence[int] = 7,
        max_displacement: float | Sequence[float] = 4.0,
        locked_borders: bool = True,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.num_control_points = as_shape3(num_control_points, "num_control_points")
        if min(self.num_control_points) < 4:
            raise ValueError(f"num_control_points must be at least 4, got {num_control_points!r}")
        disp = (
            [float(max_displacement)] * 3
            if isinstance(max_displacement, int | float)
            else [float(v) for v in max_displacement]
        )
        if len(disp) != 3 or any(v < 0 for v in disp):
            raise ValueError(
                f"max_displacement must be non-negative (one or three values), got {max_displacement!r}"
            )
        self.max_displacement = disp
        self.locked_borders = locked_borders
        self.p = check_probability("p", p)

    def sample_step(self, in_shape: Shape3, generator: torch.Generator) -> SpatialStep:
        apply = bool(bernoulli(generator, self.p))
        field = torch.stack(
            [uniform(generator, -m, m, self.num_control_points) for m in self.max_displacement]
        ).to(torch.float32)
        if self.locked_borders:
            inner = torch.zeros_like(field)
            inner[:, 1:-1, 1:-1, 1:-1] = 1.0
            field = field * inner
        if not apply:
            field = torch.zeros_like(field)
        return SpatialStep(in_shape, in_shape, torch.eye(4, dtype=torch.float64), field)
