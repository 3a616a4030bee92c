"""Fixtures of the data tests: tiny NIfTI subjects written into tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lightly_topo.data import ModalityFile, Subject


def smooth_volume(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """A positive blob on a zero background (a tiny stand-in for a skull-stripped brain)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r2 = sum(g**2 for g in grids)
    vol = (100 + 20 * rng.standard_normal(tuple(shape))) * (r2 < 0.6)
    return vol.astype(np.float32)


@pytest.fixture
def write_nifti() -> Callable[..., Path]:
    """``write_nifti(path, data, affine=None)``: save a NIfTI file and return its path."""

    def write(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(
            nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path)
        )
        return path

    return write


@pytest.fixture
def make_subject(tmp_path: Path, write_nifti: Callable[..., Path]) -> Callable[..., Subject]:
    """``make_subject(sid, modalities=("t1", "flair"), shape=(16, 16, 16), label=True, ...)``."""

    def make(
        sid: str = "s1",
        modalities: Sequence[str] = ("t1", "flair"),
        shape: Sequence[int] = (16, 16, 16),
        label: bool = True,
        affine: np.ndarray | None = None,
        labels: dict | None = None,
        seed: int = 0,
    ) -> Subject:
        folder = tmp_path / "subjects" / sid
        images = {}
        for i, m in enumerate(modalities):
            vol = smooth_volume(shape, seed + i) * (1 + i)
            images[m] = ModalityFile(m, write_nifti(folder / f"{sid}_{m}.nii.gz", vol, affine))
        label_map = None
        if label:
            lab = (smooth_volume(shape, seed) > 110).astype(np.uint8)
            label_map = write_nifti(folder / f"{sid}_seg.nii.gz", lab, affine)
        return Subject(sid, images, label_map=label_map, labels=dict(labels or {"age": 40}))

    return make
