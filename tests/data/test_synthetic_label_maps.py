"""Label-map seeding: FreeSurfer ids -> structures, reorientation, errors, generation."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from lightly_topo.data.errors import CorruptFileError, InvalidVolumeError, MissingFileError
from lightly_topo.data.synthetic import FREESURFER_TO_STRUCTURE, STRUCTURES, SyntheticBrains
from lightly_topo.data.synthetic.label_maps import list_label_maps, load_label_map


def _toy_head() -> np.ndarray:
    """A 40 x 48 x 40 RAS label map (1 mm): skull, soft tissue, two hemispheres, a
    midline corpus callosum, thalami."""
    x, y, z = np.meshgrid(np.arange(40), np.arange(48), np.arange(40), indexing="ij")
    r = np.sqrt(((x - 19.5) / 18) ** 2 + ((y - 23.5) / 22) ** 2 + ((z - 19.5) / 18) ** 2)
    left = x < 20
    labels = np.zeros(x.shape, dtype=np.int32)
    labels[r < 1.0] = 511  # unnamed extra-cerebral class -> soft tissue
    labels[r < 0.9] = 515  # skull
    labels[r < 0.8] = np.where(left, 3, 42)[r < 0.8]
    labels[r < 0.6] = np.where(left, 2, 41)[r < 0.6]
    labels[(r < 0.6) & (np.abs(x - 19.5) < 1) & (z > 22)] = 251
    thalamus = (
        (np.abs(x - 19.5) > 3)
        & (np.abs(x - 19.5) < 8)
        & (np.abs(y - 23.5) < 5)
        & (np.abs(z - 17) < 4)
    )
    labels[thalamus] = np.where(left, 10, 49)[thalamus]
    return labels


def _write_lia(path: Path, ras: np.ndarray) -> Path:
    """Store a RAS array in LIA voxel order (as the SynthSeg maps are)."""
    transform = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt("LIA")
    )
    data = nib.orientations.apply_orientation(ras, transform)
    affine = np.eye(4) @ nib.orientations.inv_ornt_aff(transform, ras.shape)
    image = nib.Nifti1Image(data.astype(np.float32), affine)
    assert nib.aff2axcodes(image.affine) == ("L", "I", "A")
    nib.save(image, str(path))
    return path


def test_freesurfer_mapping_and_reorientation(tmp_path: Path) -> None:
    ras = _toy_head()
    seed = load_label_map(_write_lia(tmp_path / "toy.nii.gz", ras))
    lut = np.zeros(600, dtype=np.uint8)
    for fs_id, structure in FREESURFER_TO_STRUCTURE.items():
        lut[fs_id] = structure
    lut[511] = STRUCTURES["soft_tissue"]
    expected = lut[ras]
    cc = ras == 251
    expected[cc & (np.arange(40)[:, None, None] >= 20)] = STRUCTURES["right_cerebral_white_matter"]
    head = np.argwhere(expected > 0)
    low, high = head.min(0), head.max(0) + 1
    expected = expected[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
    assert seed.structures.shape == expected.shape
    assert np.array_equal(seed.structures.numpy(), expected)
    assert seed.spacing == (1.0, 1.0, 1.0)
    structures = seed.structures.long()
    left_x = (structures == STRUCTURES["left_thalamus"]).nonzero()[:, 0].double().mean()
    right_x = (structures == STRUCTURES["right_thalamus"]).nonzero()[:, 0].double().mean()
    assert left_x < right_x


def test_generation_from_a_label_map_file(tmp_path: Path) -> None:
    path = _write_lia(tmp_path / "toy.nii.gz", _toy_head())
    dataset = SyntheticBrains(2, size=24, label_maps=[path], fov_mm=48.0, modalities=("t1",))
    record = dataset.generate(1)
    assert record.source == str(path)
    anatomy = record.anatomy[0]
    present = set(anatomy.unique().tolist())
    mapped = {int(v) for v in np.unique(load_label_map(path).structures.numpy())}
    assert present <= mapped
    assert {
        STRUCTURES["left_thalamus"],
        STRUCTURES["right_thalamus"],
        STRUCTURES["skull"],
    } <= present
    left = (anatomy == STRUCTURES["left_cerebral_white_matter"]).nonzero()[:, 0].double().mean()
    right = (anatomy == STRUCTURES["right_cerebral_white_matter"]).nonzero()[:, 0].double().mean()
    assert left < right
    assert (record.lesion_map > 0).any()  # index 1: tumour in the left hemisphere
    assert torch.isfinite(dataset[0]["images"]["t1"]).all()


def test_bad_label_maps_raise(tmp_path: Path) -> None:
    ras = _toy_head()
    ras[5, 5, 5] = 99  # not a FreeSurfer id the generator knows
    with pytest.raises(CorruptFileError, match=r"\[99\]"):
        load_label_map(_write_lia(tmp_path / "unknown.nii.gz", ras))
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4), dtype=np.float32), np.eye(4)), str(flat))
    with pytest.raises(CorruptFileError, match="3D"):
        load_label_map(flat)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti")
    with pytest.raises(CorruptFileError, match=r"broken\.nii\.gz"):
        load_label_map(broken)
    with pytest.raises(MissingFileError, match=r"missing\.nii\.gz"):
        list_label_maps([tmp_path / "missing.nii.gz"])


def test_folder_listing(tmp_path: Path) -> None:
    for name in ("b.nii.gz", "a.nii", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_label_maps(tmp_path)] == ["a.nii", "b.nii.gz"]


def test_lesion_without_white_matter_on_that_side_raises(tmp_path: Path) -> None:
    ras = _toy_head()
    ras[(ras == 2) | (ras == 251)] = 41  # no left white matter left
    path = _write_lia(tmp_path / "right_only.nii.gz", ras)
    dataset = SyntheticBrains(2, size=16, label_maps=[path], fov_mm=48.0, modalities=("t1",))
    with pytest.raises(InvalidVolumeError, match="left cerebral white matter"):
        dataset[1]  # tumour in the left hemisphere
    assert dataset[0]["labels"]["lesion"] == 0
