from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from lightly_topo.data.preprocess import (
    crop_affine,
    foreground_bbox,
    grid_for_spacing,
    reorient_to_ras,
    resample_volume,
    voxel_spacing,
    zscore_foreground,
)


def test_zscore_foreground_stats_and_constant_volume() -> None:
    rng = np.random.default_rng(0)
    vol = np.zeros((10, 10, 10), np.float32)
    vol[2:8, 2:8, 2:8] = rng.normal(50, 7, (6, 6, 6))
    out = zscore_foreground(vol)
    fg = vol != 0
    assert abs(out[fg].mean()) < 1e-4 and abs(out[fg].std() - 1) < 1e-3
    assert np.all(out[~fg] == 0)  # background stays 0 (MONAI NormalizeIntensity(nonzero=True))
    given = np.zeros_like(fg)
    given[3:7, 3:7, 3:7] = True
    assert np.all(zscore_foreground(vol, given)[~given] == 0)
    const = zscore_foreground(np.zeros((4, 4, 4)))
    assert np.isfinite(const).all() and np.all(const == 0)
    assert np.all(zscore_foreground(np.full((4, 4, 4), 7.0)) == 0)


def test_reorient_to_ras_keeps_world_positions() -> None:
    rng = np.random.default_rng(1)
    vol = rng.random((3, 4, 5))
    # LPS-like affine with permuted axes: array axis 0 -> -y, 1 -> -x, 2 -> z.
    affine = np.array([[0, -2.0, 0, 10], [-1.0, 0, 0, 5], [0, 0, 3.0, -4], [0, 0, 0, 1]])
    out, new = reorient_to_ras(vol, affine)
    assert nib.aff2axcodes(new) == ("R", "A", "S")
    assert out.shape == (4, 3, 5)
    assert out.flags["C_CONTIGUOUS"]
    for idx in [(0, 0, 0), (2, 3, 4), (1, 2, 3)]:
        world = affine @ np.array([*idx, 1.0])
        new_idx = np.rint(np.linalg.inv(new) @ world)[:3].astype(int)
        assert out[tuple(new_idx)] == vol[idx]


def test_reorient_ras_input_is_unchanged() -> None:
    vol = np.arange(8.0).reshape(2, 2, 2)
    out, aff = reorient_to_ras(vol, np.eye(4))
    np.testing.assert_array_equal(out, vol)
    np.testing.assert_array_equal(aff, np.eye(4))


def test_grid_for_spacing_and_resample_linear_ramp() -> None:
    vol = np.tile(np.arange(9, dtype=np.float32)[:, None, None], (1, 5, 5))  # value = x index
    affine = np.eye(4)
    shape, new_aff = grid_for_spacing(vol.shape, affine, (2.0, 1.0, 1.0))
    assert shape == (5, 5, 5)
    assert voxel_spacing(new_aff) == pytest.approx((2.0, 1.0, 1.0))
    out = resample_volume(vol, affine, new_aff, shape)
    np.testing.assert_allclose(out[:, 2, 2], [0, 2, 4, 6, 8], atol=1e-3)
    # A half-voxel shift interpolates linearly; a voxel a whole voxel outside the source is 0.
    shifted = affine.copy()
    shifted[0, 3] = 0.5
    out2 = resample_volume(vol, affine, shifted, (8, 5, 5))
    np.testing.assert_allclose(out2[:, 2, 2], np.arange(8) + 0.5, atol=1e-3)
    shifted[0, 3] = 2.0
    out3 = resample_volume(vol, affine, shifted, (8, 5, 5))
    np.testing.assert_allclose(out3[:7, 2, 2], np.arange(7) + 2, atol=1e-3)
    assert out3[7, 2, 2] == 0


def test_resample_nearest_keeps_labels() -> None:
    lab = np.random.default_rng(0).integers(0, 5, (6, 7, 8)).astype(np.float32)
    src = np.diag([1.0, 1.0, 1.0, 1.0])
    dst = np.diag([0.5, 0.5, 0.5, 1.0])
    out = resample_volume(lab, src, dst, (11, 13, 15), mode="nearest")
    assert set(np.unique(out)) <= set(np.unique(lab))
    np.testing.assert_array_equal(out[::2, ::2, ::2], lab)


def test_foreground_bbox_and_crop_affine() -> None:
    fg = np.zeros((10, 10, 10), bool)
    fg[3:5, 6, 0:2] = True
    box = foreground_bbox(fg, margin=2)
    assert box == (slice(1, 7), slice(4, 9), slice(0, 4))
    aff = crop_affine(np.diag([2.0, 2.0, 2.0, 1.0]), box)
    np.testing.assert_allclose(aff[:3, 3], [2.0, 8.0, 0.0])
    assert foreground_bbox(np.zeros((3, 3, 3), bool)) is None
