from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from lightly_topo.data import CorruptFileError, InvalidVolumeError, MissingFileError
from lightly_topo.data.io import file_digest, load_image, load_label_map, read_header


def test_read_header_shape_affine_spacing(tmp_path: Path, write_nifti) -> None:
    affine = np.diag([2.0, 3.0, 1.5, 1.0])
    p = write_nifti(tmp_path / "a.nii.gz", np.zeros((4, 5, 6), np.float32), affine)
    h = read_header(p)
    assert h.shape == (4, 5, 6)
    assert h.channels == 1
    np.testing.assert_allclose(h.affine, affine)
    assert h.spacing == pytest.approx((2.0, 3.0, 1.5))


def test_read_header_4d_needs_channel(tmp_path: Path, write_nifti) -> None:
    p = write_nifti(tmp_path / "a.nii.gz", np.zeros((4, 4, 4, 3), np.float32))
    with pytest.raises(InvalidVolumeError, match="3 channels"):
        read_header(p)
    assert read_header(p, channel=2).channels == 3
    with pytest.raises(InvalidVolumeError, match="channel 3 out of range"):
        read_header(p, channel=3)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"nope\.nii\.gz"):
        read_header(tmp_path / "nope.nii.gz")


@pytest.mark.parametrize("name", ["t.nii.gz", "t.nii"])
def test_truncated_file_is_caught_from_the_header(tmp_path: Path, write_nifti, name: str) -> None:
    p = write_nifti(
        tmp_path / name, np.random.default_rng(0).random((16, 16, 16)).astype(np.float32)
    )
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=name):
        read_header(p)
    with pytest.raises(CorruptFileError, match=name):
        load_image(p)


def test_garbage_file_is_corrupt(tmp_path: Path) -> None:
    p = tmp_path / "junk.nii.gz"
    p.write_bytes(b"this is not a nifti file at all" * 20)
    with pytest.raises(CorruptFileError, match=r"junk\.nii\.gz"):
        read_header(p)


def test_multi_member_gzip_is_not_flagged(tmp_path: Path, write_nifti) -> None:
    # A valid file whose gzip trailer does not hold the total size (two gzip members).
    p = write_nifti(tmp_path / "a.nii", np.arange(4096, dtype=np.float32).reshape(16, 16, 16))
    raw = p.read_bytes()
    q = tmp_path / "b.nii.gz"
    q.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    assert read_header(q).shape == (16, 16, 16)
    np.testing.assert_array_equal(load_image(q)[0], load_image(p)[0])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_voxels(tmp_path: Path, write_nifti, bad: float) -> None:
    vol = np.ones((8, 8, 8), np.float32)
    vol[1, 2, 3] = bad
    p = write_nifti(tmp_path / "bad.nii.gz", vol)
    read_header(p)  # the header is fine; only decoding can see the voxels
    with pytest.raises(
        InvalidVolumeError, match=r"bad\.nii\.gz: 1 NaN|bad\.nii\.gz: 0 NaN and 1 Inf"
    ):
        load_image(p)


def test_load_image_channel_and_scaling(tmp_path: Path, write_nifti) -> None:
    vol = np.stack([np.full((4, 4, 4), c, np.float32) for c in range(3)], axis=-1)
    p = write_nifti(tmp_path / "four.nii.gz", vol)
    data, affine = load_image(p, channel=2)
    assert data.shape == (4, 4, 4) and data.dtype == np.float32
    assert np.all(data == 2)
    assert affine.dtype == np.float64


def test_label_map_integer_checks(tmp_path: Path, write_nifti) -> None:
    ok = write_nifti(
        tmp_path / "ok.nii.gz", np.array([0, 1, 4, 2] * 16, np.float32).reshape(4, 4, 4)
    )
    lab, _ = load_label_map(ok)
    assert lab.dtype == np.int64 and set(np.unique(lab)) == {0, 1, 2, 4}
    frac = write_nifti(tmp_path / "frac.nii.gz", np.full((4, 4, 4), 0.5, np.float32))
    with pytest.raises(InvalidVolumeError, match=r"frac\.nii\.gz: label map with non-integer"):
        load_label_map(frac)


def test_file_digest_depends_on_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"y" * 10)
    assert file_digest(a) != file_digest(b)
    assert file_digest(a) == file_digest(a)
