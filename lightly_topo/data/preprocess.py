"""Preprocessing of decoded volumes: normalisation (and, in the dataset, reorientation,
resampling and foreground cropping)."""

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
        A float32 array. Foreground voxels have mean 0 and standard deviation 1; a constant
        volume (or constant foreground) becomes all zeros, never NaN.

    >>> out = zscore_foreground(np.array([0.0, 1.0, 3.0]))
    >>> [round(float(v), 3) for v in out]
    [-2.0, -1.0, 1.0]
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
    return ((vol - mean) / std).astype(np.float32)
