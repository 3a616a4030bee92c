"""The real sets of ``../shared/data`` load through the readers (skipped where absent).

Header-level checks everywhere; only small LGG volumes (128x128x~20) are decoded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightly_topo.data import (
    MultiModalVolumeDataset,
    collate_subjects,
    detect_layout,
    read_subjects,
)
from lightly_topo.data.io import read_header

pytestmark = pytest.mark.shared_data


def _folder(shared_data: Path, name: str) -> Path:
    path = shared_data / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


def test_lgg_subjects_labels_and_missing_modalities(shared_data: Path) -> None:
    root = _folder(shared_data, "tcga_lgg_buda2019")
    assert detect_layout(root) == "lgg"
    subjects = read_subjects(root)
    assert len(subjects) == 70
    incomplete = [s for s in subjects if set(s.modalities) != {"t1", "t1ce", "flair"}]
    assert len(incomplete) == 6
    assert all("flair" in s.modalities and s.label_map is not None for s in subjects)
    first = subjects[0]
    assert first.subject_id == "TCGA_CS_4942_19970222"
    assert (
        first.labels["neoplasm_histologic_grade"] == 2
        and first.labels["age_at_initial_pathologic"] == 44
    )
    assert read_subjects(root, layout="tcga_lgg_buda2019")[0].key == first.key


def test_lgg_dataset_decodes_a_small_subject(shared_data: Path, tmp_path: Path) -> None:
    root = _folder(shared_data, "tcga_lgg_buda2019")
    subjects = [
        s for s in read_subjects(root) if s.subject_id.startswith("TCGA_HT_7877")
    ]  # FLAIR only
    subjects += [s for s in read_subjects(root) if s.subject_id.startswith("TCGA_CS_4942")]
    ds = MultiModalVolumeDataset(
        subjects, modality_names=("t1", "t1ce", "flair"), cache_dir=tmp_path
    )
    missing, full = ds[0], ds[1]
    assert missing["mask"].tolist() == [False, False, True]
    assert list(missing["images"]) == ["flair"]
    assert tuple(full["images"]["t1"].shape) == (1, 128, 128, 20)
    assert set(full["label_map"].unique().tolist()) == {0, 1}
    assert torch.isfinite(full["images"]["flair"]).all()
    again = ds[1]
    assert torch.equal(again["images"]["t1ce"], full["images"]["t1ce"])
    batch = collate_subjects([full, again])
    assert tuple(batch["image"].shape) == (2, 3, 128, 128, 20)


def test_ms_lesjak(shared_data: Path) -> None:
    root = _folder(shared_data, "ms_lesjak2017_open_ms_data")
    assert detect_layout(root) == "ms_lesjak"
    subjects = read_subjects(root)
    assert [s.subject_id for s in subjects] == ["patient07", "patient19", "patient26"]
    for s in subjects:
        assert set(s.modalities) == {"flair", "t1", "t1ce", "t2"}
        assert s.label_map is not None and s.label_map.name.startswith("GOLD_STANDARD")
    assert subjects[0].labels["age"] == 53 and subjects[0].labels["ms_type"] == "RR"
    assert len(read_subjects(root, include_without_images=True)) == 30
    ds = MultiModalVolumeDataset(subjects[:1])  # header checks: one grid for all files
    assert ds.modality_names == ("t1", "t1ce", "t2", "flair")


def test_brats2018_samples(shared_data: Path) -> None:
    root = _folder(shared_data, "brats2018_brainy_samples")
    assert detect_layout(root) == "brats"
    subjects = read_subjects(root)
    assert [s.subject_id for s in subjects] == ["Brats18_2013_2_1", "Brats18_TCIA05_396_1"]
    assert all(set(s.modalities) == {"t1", "t1ce", "t2", "flair"} for s in subjects)
    assert read_header(subjects[0].images["t1"].path).shape == (240, 240, 155)
    MultiModalVolumeDataset(subjects)


def test_brats2015_deepmedic(shared_data: Path) -> None:
    root = _folder(shared_data, "brats2015_deepmedic_examples")
    assert detect_layout(root) == "deepmedic"
    subjects = read_subjects(root)
    assert len(subjects) == 6
    assert all(
        s.modalities == ("flair", "t1ce") and s.label_map.name == "OTMultiClass.nii.gz"
        for s in subjects
    )
    assert (
        sorted(s.labels["split"] for s in subjects)
        == ["test"] * 2 + ["train"] * 2 + ["validation"] * 2
    )
    MultiModalVolumeDataset(subjects, background="corner")


def test_ixi(shared_data: Path) -> None:
    root = _folder(shared_data, "ixi_t1_2mm_cbica_ccl_nmf")
    assert detect_layout(root) == "ixi"
    subjects = read_subjects(root)
    assert len(subjects) == 10
    s = subjects[0]
    assert s.subject_id == "IXI012-HH-1211" and s.modalities == ("t1",)
    assert s.label_map is not None and "DLMUSE" in s.label_map.name
    assert s.labels == {"Age": 38.78, "Sex": "M"}
    ds = MultiModalVolumeDataset(subjects)
    assert ds.modality_names == ("t1",)
