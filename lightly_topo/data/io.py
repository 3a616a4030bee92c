"""NIfTI reading: cheap header checks and full decoding, with the data layer's errors.

Header reads (:func:`read_header`) open only the first few hundred bytes of a file and are
what the dataset runs at construction. :func:`load_image` and :func:`load_label_map` decode the
voxels and check their content.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from lightly_topo.data.errors import CorruptFileError, InvalidVolumeError, MissingFileError

_DECODE_ERRORS = (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class NiftiHeader:
    """What a NIfTI header says about one (channel of a) file.

    Attributes:
        path: The file.
        shape: Spatial shape ``(X, Y, Z)`` (the channel axis of a 4D file is dropped).
        affine: float64 ``(4, 4)`` voxel-to-world matrix (mm), as stored (not reoriented).
        dtype: The on-disk data type.
        channels: Number of channels (1 for 3D files).
    """

    path: Path
    shape: tuple[int, int, int]
    affine: np.ndarray
    dtype: np.dtype
    channels: int

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes."""
        s = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return (float(s[0]), float(s[1]), float(s[2]))


def _open(path: Path) -> nib.Nifti1Image:
    if not path.is_file():
        raise MissingFileError(
            f"{path}: file does not exist; fix the path in the manifest or layout"
        )
    try:
        img = nib.load(str(path))
    except _DECODE_ERRORS as err:
        raise CorruptFileError(f"{path}: cannot read the NIfTI header ({err})") from err
    if not isinstance(img, nib.Nifti1Image):
        raise CorruptFileError(
            f"{path}: not a NIfTI file (nibabel read it as {type(img).__name__})"
        )
    return img


def _spatial(
    path: Path, shape: tuple[int, ...], channel: int | None
) -> tuple[tuple[int, int, int], int]:
    if len(shape) == 3:
        if channel not in (None, 0):
            raise InvalidVolumeError(
                f"{path}: channel {channel} asked for, but the file is 3D {shape}"
            )
        return (shape[0], shape[1], shape[2]), 1
    if len(shape) == 4:
        n = shape[3]
        if channel is None and n != 1:
            raise InvalidVolumeError(
                f"{path}: 4D file with {n} channels {shape}; name the channel of each modality "
                "(ModalityFile.channel), as the Decathlon reader does"
            )
        if channel is not None and not 0 <= channel < n:
            raise InvalidVolumeError(f"{path}: channel {channel} out of range for shape {shape}")
        return (shape[0], shape[1], shape[2]), n
    raise InvalidVolumeError(f"{path}: expected a 3D or 4D volume, got shape {shape}")


def read_header(
    path: str | Path, channel: int | None = None, check_size: bool = True
) -> NiftiHeader:
    """Read and check a NIfTI header without decoding the voxels.

    Args:
        path: A ``.nii`` or ``.nii.gz`` file.
        channel: For 4D files, the channel that will be read.
        check_size: Also check that the file is not truncated: exact for ``.nii``; for
            ``.nii.gz`` the gzip trailer is compared with the expected size, and only on a
            mismatch is the stream decompressed (without keeping it) to decide.

    Returns:
        The :class:`NiftiHeader`.

    Raises:
        MissingFileError: The file does not exist.
        CorruptFileError: The header cannot be read, or the file is truncated.
        InvalidVolumeError: Wrong rank, or a channel that does not exist.
    """
    path = Path(path)
    img = _open(path)
    shape, channels = _spatial(path, tuple(int(s) for s in img.shape), channel)
    header = img.header
    if check_size:
        offset = int(getattr(img.dataobj, "offset", header.get_data_offset()))
        expected = offset + math.prod(img.shape) * header.get_data_dtype().itemsize
        _check_size(path, expected)
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InvalidVolumeError(f"{path}: the header's affine is not invertible:\n{affine}")
    return NiftiHeader(path, shape, affine, header.get_data_dtype(), channels)


def _check_size(path: Path, expected: int) -> None:
    if path.name.endswith(".gz"):
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < 18:
                raise CorruptFileError(f"{path}: truncated gzip file ({f.tell()} bytes)")
            f.seek(-4, os.SEEK_END)
            isize = int.from_bytes(f.read(4), "little")
        if isize == expected % (1 << 32):
            return
        total = 0
        try:
            with gzip.open(path, "rb") as g:
                while chunk := g.read(_CHUNK):
                    total += len(chunk)
        except (OSError, EOFError, zlib.error) as err:
            raise CorruptFileError(f"{path}: truncated or corrupt gzip stream ({err})") from err
        size = total
    else:
        size = path.stat().st_size
    if size < expected:
        raise CorruptFileError(
            f"{path}: truncated NIfTI: the header needs {expected} bytes of data, the file has {size}"
        )


def _decode(path: Path, img: nib.Nifti1Image, channel: int | None, scaled: bool) -> np.ndarray:
    try:
        if scaled:
            data = np.asarray(img.get_fdata(dtype=np.float32))
        else:
            data = np.asanyarray(img.dataobj)
    except _DECODE_ERRORS as err:
        raise CorruptFileError(
            f"{path}: cannot decode the voxels ({type(err).__name__}: {err})"
        ) from err
    if data.ndim == 4:
        data = data[..., 0 if channel is None else channel]
    return np.ascontiguousarray(data)


def load_image(path: str | Path, channel: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode an image volume.

    Args:
        path: A ``.nii`` or ``.nii.gz`` file.
        channel: For 4D files whose last axis holds several modalities, the one to read.

    Returns:
        ``(volume, affine)``: float32 ``(X, Y, Z)`` with the header's scaling applied, and the
        float64 ``(4, 4)`` affine as stored.

    Raises:
        MissingFileError, CorruptFileError: As for :func:`read_header`, or if decoding fails.
        InvalidVolumeError: NaN or Inf voxels, or a bad rank.
    """
    path = Path(path)
    img = _open(path)
    _spatial(path, tuple(int(s) for s in img.shape), channel)
    data = _decode(path, img, channel, scaled=True)
    finite = np.isfinite(data)
    if not finite.all():
        n_nan = int(np.isnan(data).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise InvalidVolumeError(
            f"{path}: {n_nan} NaN and {n_inf} Inf voxels (of {data.size}); fix or drop the file"
        )
    return data, np.asarray(img.affine, dtype=np.float64)


def load_label_map(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode a label map (integer values; float files must hold whole numbers).

    Returns:
        ``(labels, affine)``: int64 ``(X, Y, Z)`` and the float64 ``(4, 4)`` affine.

    Raises:
        MissingFileError, CorruptFileError: As for :func:`read_header`.
        InvalidVolumeError: Non-integer, NaN or Inf values.
    """
    path = Path(path)
    img = _open(path)
    _spatial(path, tuple(int(s) for s in img.shape), None)
    data = _decode(path, img, None, scaled=False)
    if data.dtype.kind == "f":
        if not np.isfinite(data).all():
            raise InvalidVolumeError(f"{path}: label map with NaN or Inf values")
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            raise InvalidVolumeError(f"{path}: label map with non-integer values")
        data = rounded
    elif data.dtype.kind not in "iub":
        raise InvalidVolumeError(f"{path}: label map of unsupported dtype {data.dtype}")
    return data.astype(np.int64), np.asarray(img.affine, dtype=np.float64)


def file_digest(path: str | Path, digest_size: int = 16) -> str:
    """Content hash of a file: streamed blake2b, hex encoded.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"abc"); f.flush(); len(file_digest(f.name))
    32
    """
    h = hashlib.blake2b(digest_size=digest_size)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
