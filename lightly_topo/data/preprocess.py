"""Preprocessing of decoded volumes: reorientation to RAS+, resampling, foreground cropping
and normalisation. Arrays are ``(X, Y, Z)`` NumPy volumes with a ``(4, 4)`` affine."""

from __future__ import annotations

import numpy as np


def zscore_foreground(
    volume: np.ndarray, foreground: np.ndarray | None = None, eps: float = 1e-6
) -> np.ndarray:
    """Z-score a volume with the mean and standard deviation of its foreground.

    Args:
        volume: Array of any shape.
        foreground: Bool array of the same shape; ``None`` uses the non-zero voxels (all
            voxels if none is non-zero).
        eps: Below this standard deviation the volume counts as constant.

    Returns:
        A float32 array. Foreground voxels have mean 0 and standard deviation 1; background
        voxels are 0 (MONAI's ``NormalizeIntensity(nonzero=True)`` convention), so the
        foreground stays the non-zero voxels after normalisation and matches the zero padding
        of the spatial transforms. A constant volume (or constant foreground) becomes all
        zeros, never NaN.

    >>> out = zscore_foreground(np.array([0.0, 1.0, 3.0]))
    >>> [round(float(v), 3) for v in out]
    [0.0, -1.0, 1.0]
    """
    vol = np.asarray(volume, dtype=np.float32)
    fg = vol != 0 if foreground is None else np.asarray(foreground, dtype=bool)
    if not fg.any():
        fg = np.ones_like(vol, dtype=bool)
    values = vol[fg].astype(np.float64)
    mean = float(values.mean())
    std = float(values.std())
    if std < eps:
        return np.zeros_like(vol, dtype=np.float32)
    out = np.zeros_like(vol, dtype=np.float32)
    out[fg] = ((values - mean) / std).astype(np.float32)
    return out


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along the three array axes of a ``(4, 4)`` affine."""
    s = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
    return (float(s[0]), float(s[1]), float(s[2]))


def reorient_to_ras(volume: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permute and flip the array axes so that they point (closest to) Right, Anterior, Superior.

    Only axis permutations and flips are used (no interpolation), as in
    ``nibabel.as_closest_canonical``; the returned affine maps the new voxel grid to the same
    world positions.

    Args:
        volume: Array ``(X, Y, Z)`` (any dtype).
        affine: float ``(4, 4)`` voxel-to-world matrix.

    Returns:
        ``(volume, affine)`` in RAS+ (the volume is C-contiguous).

    >>> vol = np.arange(8).reshape(2, 2, 2)
    >>> out, aff = reorient_to_ras(vol, np.diag([-1.0, 1.0, 1.0, 1.0]))
    >>> out[:, 0, 0].tolist(), float(aff[0, 0])
    ([4, 0], 1.0)
    """
    import nibabel.orientations as nio

    affine = np.asarray(affine, dtype=np.float64)
    ornt = nio.io_orientation(affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return np.ascontiguousarray(volume), affine
    out = nio.apply_orientation(volume, ornt)
    new_affine = affine @ nio.inv_ornt_aff(ornt, volume.shape[:3])
    return np.ascontiguousarray(out), new_affine


def grid_for_spacing(
    shape: tuple[int, ...], affine: np.ndarray, spacing: tuple[float, float, float]
) -> tuple[tuple[int, int, int], np.ndarray]:
    """The voxel grid with the given spacing that covers the same field of view.

    The first voxel centre is kept; the new grid spans the old one from its first to its last
    voxel centre (``n_new = floor((n_old - 1) * old / new) + 1``).

    Returns:
        ``(shape, affine)`` of the new grid.
    """
    old = np.asarray(voxel_spacing(affine))
    new = np.asarray(spacing, dtype=np.float64)
    if new.shape != (3,) or (new <= 0).any():
        raise ValueError(f"spacing must be three positive numbers (mm), got {spacing}")
    scale = new / old
    n = np.floor((np.asarray(shape[:3]) - 1) / scale + 1e-6).astype(int) + 1
    dst_affine = np.asarray(affine, dtype=np.float64) @ np.diag([*scale, 1.0])
    return (int(n[0]), int(n[1]), int(n[2])), dst_affine


def resample_volume(
    volume: np.ndarray,
    src_affine: np.ndarray,
    dst_affine: np.ndarray,
    dst_shape: tuple[int, int, int],
    mode: str = "linear",
    chunk: int = 16,
) -> np.ndarray:
    """Resample a volume onto another voxel grid (world coordinates are matched).

    Output voxels that fall outside the source volume are 0. Runs on CPU with
    ``torch.nn.functional.grid_sample``, ``chunk`` output slices (first axis) at a time so that
    memory stays small.

    Args:
        volume: float or integer array ``(X, Y, Z)``.
        src_affine: ``(4, 4)`` voxel-to-world of ``volume``.
        dst_affine: ``(4, 4)`` voxel-to-world of the output grid.
        dst_shape: Output shape ``(X', Y', Z')``.
        mode: ``"linear"`` (trilinear, images) or ``"nearest"`` (label maps).

    Returns:
        float32 array ``dst_shape`` (``nearest`` keeps the input's integer values exactly,
        up to 2**24).
    """
    import torch
    import torch.nn.functional as F

    if mode not in ("linear", "nearest"):
        raise ValueError(f"mode must be 'linear' or 'nearest', got {mode!r}")
    m = np.linalg.inv(np.asarray(src_affine, np.float64)) @ np.asarray(dst_affine, np.float64)
    src = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float64))[None, None]
    n_src = np.asarray(volume.shape[:3], dtype=np.float64)
    # Normalised coordinate of index i along an axis of length n (align_corners=True).
    norm = np.where(n_src > 1, 2.0 / np.maximum(n_src - 1, 1), 0.0)
    lin = m[:3, :3] * norm[:, None]
    off = m[:3, 3] * norm - np.where(n_src > 1, 1.0, 0.0)
    # float64 throughout, so that whole-voxel shifts land exactly on source voxels.
    lin_t = torch.from_numpy(lin)
    off_t = torch.from_numpy(off)
    jj, kk = torch.meshgrid(
        torch.arange(dst_shape[1], dtype=torch.float64),
        torch.arange(dst_shape[2], dtype=torch.float64),
        indexing="ij",
    )
    out = np.empty(dst_shape, dtype=np.float32)
    for start in range(0, dst_shape[0], chunk):
        ii = torch.arange(start, min(start + chunk, dst_shape[0]), dtype=torch.float64)
        idx = torch.stack(
            torch.broadcast_tensors(ii[:, None, None], jj[None], kk[None]), dim=-1
        )  # (c, Y', Z', 3) voxel indices (i, j, k) of the output
        coords = idx @ lin_t.T + off_t  # normalised (i, j, k) in the source
        grid = coords.flip(-1)[None]  # grid_sample wants (x, y, z) = (k, j, i)
        res = F.grid_sample(
            src, grid, mode="bilinear" if mode == "linear" else "nearest", align_corners=True
        )
        out[start : start + len(ii)] = res[0, 0].numpy().astype(np.float32)
    return out


def foreground_bbox(foreground: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Bounding box of the True voxels, grown by ``margin`` voxels (clipped to the volume).

    Returns:
        One slice per axis, or ``None`` if no voxel is True.

    >>> fg = np.zeros((5, 5, 5), bool); fg[2, 1:3, 4] = True
    >>> foreground_bbox(fg, margin=1)
    (slice(1, 4, None), slice(0, 4, None), slice(3, 5, None))
    """
    if not foreground.any():
        return None
    box = []
    for axis in range(foreground.ndim):
        other = tuple(a for a in range(foreground.ndim) if a != axis)
        hits = np.flatnonzero(foreground.any(axis=other))
        lo = max(int(hits[0]) - margin, 0)
        hi = min(int(hits[-1]) + 1 + margin, foreground.shape[axis])
        box.append(slice(lo, hi))
    return tuple(box)


def crop_affine(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """The affine of a crop that starts at ``box[i].start`` along each axis."""
    shift = np.eye(4)
    shift[:3, 3] = [s.start or 0 for s in box[:3]]
    return np.asarray(affine, dtype=np.float64) @ shift
