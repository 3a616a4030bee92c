"""The output voxel grid and the per-subject random deformation (affine + smooth nonlinear).

Coordinates are millimetres in RAS+ (``x`` left to right along ``D``, ``y`` posterior to
anterior along ``H``, ``z`` inferior to superior along ``W``), centred on the field of view.
A subject is drawn by mapping every output voxel to a point of the *template* space (the
procedural anatomy or a real label map), so the anatomy is generated at the target size
directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lightly_topo.data.synthetic.fields import smooth_field


def voxel_affine(size: int, fov_mm: float) -> Tensor:
    """The voxel-to-world affine of a centred cubic grid of ``size`` voxels over ``fov_mm``.

    >>> voxel_affine(4, 8.0)[0].tolist()
    [2.0, 0.0, 0.0, -3.0]
    """
    spacing = fov_mm / size
    affine = torch.eye(4, dtype=torch.float64)
    affine[:3, :3] *= spacing
    affine[:3, 3] = -fov_mm / 2 + spacing / 2
    return affine


def output_grid_mm(size: int, fov_mm: float) -> Tensor:
    """World coordinates (mm) of the voxel centres of the output grid.

    Returns:
        float32 tensor (3, size, size, size): ``x, y, z`` of each voxel.
    """
    spacing = fov_mm / size
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) * spacing - fov_mm / 2
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"))


@dataclass(frozen=True)
class DeformationParams:
    """Strength of the per-subject random deformation.

    Attributes:
        scale: Maximum relative change of the global size (uniform in ``1 ± scale``).
        anisotropy: Maximum extra relative change per axis.
        rotation_deg: Maximum rotation about each axis, in degrees.
        translation_mm: Maximum translation along each axis.
        nonlinear_mm: Standard deviation of the smooth displacement at its control points.
        control_points: Control points per axis of the displacement field.
    """

    scale: float = 0.08
    anisotropy: float = 0.04
    rotation_deg: float = 7.0
    translation_mm: float = 4.0
    nonlinear_mm: float = 3.0
    control_points: int = 5


def _rotation(angles: np.ndarray) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def template_coordinates(
    grid_mm: Tensor,
    params: DeformationParams,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> tuple[Tensor, dict[str, float]]:
    """Map the output grid into template space through a random affine and a smooth warp.

    ``q = A⁻¹ (p - t) + u(p)``, where ``A`` is a random rotation times scaling, ``t`` a
    random translation and ``u`` a displacement field upsampled from a coarse Gaussian grid.

    Args:
        grid_mm: Output voxel coordinates, float32 (3, S, S, S), from :func:`output_grid_mm`.
        params: Deformation strength.
        rng: Source of the affine parameters.
        generator: Source of the displacement field.

    Returns:
        ``(q, drawn)``: template coordinates float32 (3, S, S, S) and the drawn global
        parameters (scale, per-axis angles in degrees, translation).
    """
    size = grid_mm.shape[1]
    scale = rng.uniform(1 - params.scale, 1 + params.scale)
    axes = scale * rng.uniform(1 - params.anisotropy, 1 + params.anisotropy, size=3)
    angles = np.deg2rad(rng.uniform(-params.rotation_deg, params.rotation_deg, size=3))
    translation = rng.uniform(-params.translation_mm, params.translation_mm, size=3)
    forward = _rotation(angles) @ np.diag(axes)
    inverse = torch.from_numpy(np.linalg.inv(forward)).float()
    shifted = grid_mm.reshape(3, -1) - torch.from_numpy(translation).float()[:, None]
    q = (inverse @ shifted).reshape(grid_mm.shape)
    if params.nonlinear_mm > 0:
        q = q + params.nonlinear_mm * smooth_field(3, params.control_points, size, generator)
    drawn = {
        "scale": float(scale),
        "rotation_x_deg": float(np.rad2deg(angles[0])),
        "rotation_y_deg": float(np.rad2deg(angles[1])),
        "rotation_z_deg": float(np.rad2deg(angles[2])),
        "translation_x_mm": float(translation[0]),
        "translation_y_mm": float(translation[1]),
        "translation_z_mm": float(translation[2]),
    }
    return q, drawn
