"""Voxel-coordinate grids: building them from matrices and sampling volumes at them.

A *grid* holds, for every output voxel, its coordinates (in voxels, along the ``D, H, W``
axes, voxel centres at integers) in the subject's original volume: float32 ``(3, d, h, w)``
for one view, ``(B, 3, d, h, w)`` for a batch. A *matrix* is a float64 ``(4, 4)`` (or
``(B, 4, 4)``) homogeneous map from output voxel indices to original coordinates, so that
``grid[:, i, j, k] = (matrix @ (i, j, k, 1))[:3]`` for an affine view.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Shape3 = tuple[int, int, int]


def as_shape3(size: int | Sequence[int], name: str = "size") -> Shape3:
    """``size`` as a tuple of three positive ints (an int is used for every axis)."""
    values = [int(size)] * 3 if isinstance(size, int) else [int(s) for s in size]
    if len(values) != 3 or any(v < 1 for v in values):
        raise ValueError(
            f"{name} must be a positive int or three positive ints (D, H, W), got {size!r}"
        )
    return (values[0], values[1], values[2])


def identity_grid(shape: Sequence[int], device: torch.device | str | None = None) -> Tensor:
    """The grid of a volume in its own voxel space: float32 ``(3, d, h, w)``.

    >>> identity_grid((2, 3, 4))[:, 1, 2, 3].tolist()
    [1.0, 2.0, 3.0]
    """
    axes = [torch.arange(int(n), dtype=torch.float32, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def matrix_grid(matrix: Tensor, shape: Sequence[int]) -> Tensor:
    """The grid ``matrix @ (i, j, k, 1)`` of every output voxel of ``shape``.

    Args:
        matrix: float ``(4, 4)`` or ``(B, 4, 4)``: output voxel index to original coordinates.
        shape: Output spatial shape ``(d, h, w)``.

    Returns:
        float32 ``(3, d, h, w)`` or ``(B, 3, d, h, w)`` on ``matrix``'s device.
    """
    batched = matrix.dim() == 3
    m = (matrix if batched else matrix[None]).to(torch.float64)
    d, h, w = (int(n) for n in shape)
    dev = m.device
    axes = [torch.arange(k, dtype=torch.float64, device=dev) for k in (d, h, w)]
    # Per output coordinate: three 1D terms in float64, summed by broadcasting in float32.
    t0 = (m[:, :3, 0, None] * axes[0] + m[:, :3, 3, None]).float()[..., :, None, None]
    t1 = (m[:, :3, 1, None] * axes[1]).float()[..., None, :, None]
    t2 = (m[:, :3, 2, None] * axes[2]).float()[..., None, None, :]
    grid = (t0 + t1) + t2
    return grid if batched else grid[0]


def apply_matrix(matrix: Tensor, grid: Tensor) -> Tensor:
    """Map the coordinates of ``grid`` (B, 3, d, h, w) with ``matrix`` (B, 4, 4)."""
    m = matrix.to(device=grid.device, dtype=torch.float64)
    rot = m[:, :3, :3]
    shift = m[:, :3, 3]
    out = torch.einsum("bij,bjdhw->bidhw", rot, grid.to(torch.float64))
    return (out + shift[:, :, None, None, None]).to(torch.float32)


def normalize_grid(grid: Tensor, in_shape: Sequence[int]) -> Tensor:
    """Voxel coordinates (B, 3, d, h, w) to :func:`torch.nn.functional.grid_sample`'s
    normalised ``(B, d, h, w, 3)`` grid (``align_corners=True``, last axis ordered W, H, D)."""
    scale = torch.tensor(
        [2.0 / max(int(n) - 1, 1) for n in in_shape], dtype=torch.float32, device=grid.device
    )
    norm = grid * scale.view(1, 3, 1, 1, 1) - 1.0
    return norm.permute(0, 2, 3, 4, 1).flip(-1)


def sample(volume: Tensor, grid: Tensor, mode: str = "bilinear") -> Tensor:
    """Sample ``volume`` (B, C, D, H, W) at the voxel coordinates ``grid`` (B, 3, d, h, w).

    Trilinear (``mode="bilinear"``) or nearest-neighbour (``mode="nearest"``) interpolation;
    coordinates outside ``[0, D - 1] x [0, H - 1] x [0, W - 1]`` read zeros. Integer volumes
    (label maps) are sampled as float32 and rounded back to their dtype.

    Returns:
        ``(B, C, d, h, w)`` with ``volume``'s dtype.
    """
    norm = normalize_grid(grid.to(volume.device), volume.shape[2:])
    if volume.is_floating_point():
        src = volume if volume.dtype in (torch.float32, torch.float64) else volume.float()
        out = F.grid_sample(
            src, norm.to(src.dtype), mode=mode, padding_mode="zeros", align_corners=True
        )
        return out.to(volume.dtype)
    out = F.grid_sample(volume.float(), norm, mode=mode, padding_mode="zeros", align_corners=True)
    return out.round().to(volume.dtype)


def signed_permutation(
    matrix: Tensor, tol: float = 1e-6
) -> tuple[list[int], list[int], list[int]] | None:
    """Decompose a ``(4, 4)`` matrix that only permutes, flips and shifts by whole voxels.

    Returns:
        ``(axis, sign, shift)`` with ``original[a] = sign[a] * out[axis[a]] + shift[a]`` for
        each original axis ``a``, or ``None`` if the matrix interpolates.
    """
    m = matrix.to(torch.float64).cpu()
    rot, shift = m[:3, :3], m[:3, 3]
    rounded = rot.round()
    if not torch.allclose(rot, rounded, atol=tol) or not torch.allclose(
        shift, shift.round(), atol=tol
    ):
        return None
    if not bool((rounded.abs().sum(0) == 1).all()) or not bool((rounded.abs().sum(1) == 1).all()):
        return None
    axis = [int(rounded[a].abs().argmax()) for a in range(3)]
    sign = [int(rounded[a, axis[a]]) for a in range(3)]
    return axis, sign, [round(float(s)) for s in shift]


def _take(x: Tensor, dim: int, start: int, n: int, sign: int) -> Tensor:
    """The ``n`` indices from ``min(start, start + sign * (n - 1))`` upwards along ``dim``,
    zero outside the volume (the caller flips where ``sign < 0``)."""
    size = x.shape[dim]
    lo, hi = (start, start + n - 1) if sign > 0 else (start - n + 1, start)
    a, b = max(lo, 0), min(hi, size - 1)
    if a > b:
        shape = list(x.shape)
        shape[dim] = n
        return x.new_zeros(shape)
    part = x.narrow(dim, a, b - a + 1)
    before, after = a - lo, hi - b
    if before or after:
        pieces = []
        for count in (before, None, after):
            if count is None:
                pieces.append(part)
            elif count:
                shape = list(x.shape)
                shape[dim] = count
                pieces.append(x.new_zeros(shape))
        part = torch.cat(pieces, dim=dim)
    return part


def take_permuted(
    volume: Tensor, perm: tuple[list[int], list[int], list[int]], out_shape: Sequence[int]
) -> Tensor:
    """Exact resampling of ``volume`` (C, D, H, W) by a signed permutation matrix (no
    interpolation; zeros outside the volume). ``perm`` comes from :func:`signed_permutation`.
    The result may be a (non-contiguous) view of ``volume``."""
    axis, sign, shift = perm
    x = volume
    for a in range(3):
        x = _take(x, 1 + a, shift[a], int(out_shape[axis[a]]), sign[a])
    flips = [1 + a for a in range(3) if sign[a] < 0]
    if flips:
        x = x.flip(flips)
    source_of = [axis.index(j) for j in range(3)]
    return x.permute(0, 1 + source_of[0], 1 + source_of[1], 1 + source_of[2])
