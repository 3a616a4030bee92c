from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lightly_topo.data import (
    EmptyDatasetError,
    LayoutError,
    ManifestError,
    UnknownModalityError,
    detect_layout,
    read_bids,
    read_brats,
    read_csv_manifest,
    read_decathlon,
    read_nnssl_json,
    read_subjects,
)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_brats_2018_naming_with_grade(tmp_path: Path) -> None:
    for case, grade in (("Brats18_A_1", "HGG"), ("Brats18_B_1", "LGG")):
        for s in ("t1", "t1ce", "t2", "flair", "seg"):
            _touch(tmp_path / grade / case / f"{case}_{s}.nii.gz")
    _touch(tmp_path / "HGG" / "Brats18_A_1" / "notes.txt")
    subjects = read_brats(tmp_path)
    assert [s.subject_id for s in subjects] == ["Brats18_A_1", "Brats18_B_1"]
    assert subjects[0].modalities == ("flair", "t1", "t1ce", "t2")
    assert subjects[0].label_map.name == "Brats18_A_1_seg.nii.gz"
    assert subjects[1].labels == {"grade": "LGG"}
    assert detect_layout(tmp_path) == "brats"


def test_brats_2023_naming_and_missing_modality(tmp_path: Path) -> None:
    case = "BraTS-GLI-00001-000"
    for s in ("t1n", "t1c", "t2w"):
        _touch(tmp_path / case / f"{case}-{s}.nii.gz")
    (subject,) = read_brats(tmp_path)
    assert set(subject.modalities) == {"t1", "t1ce", "t2"}
    assert subject.label_map is None


def test_brats_duplicate_modality(tmp_path: Path) -> None:
    _touch(tmp_path / "c" / "c_t1.nii.gz")
    _touch(tmp_path / "c" / "c_t1.nii")
    with pytest.raises(ManifestError, match="two files for modality 't1'"):
        read_brats(tmp_path)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(EmptyDatasetError, match=str(tmp_path)):
        read_brats(tmp_path)
    with pytest.raises(LayoutError, match="cannot detect"):
        detect_layout(tmp_path)


def test_decathlon(tmp_path: Path) -> None:
    meta = {
        "name": "BRATS",
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "training": [
            {"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}
        ],
        "test": ["./imagesTs/BRATS_900.nii.gz"],
    }
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    (subject,) = read_decathlon(tmp_path)
    assert subject.subject_id == "BRATS_001"
    assert {m: f.channel for m, f in subject.images.items()} == {
        "flair": 0,
        "t1": 1,
        "t1ce": 2,
        "t2": 3,
    }
    assert subject.label_map == tmp_path / "labelsTr" / "BRATS_001.nii.gz"
    assert subject.images["t1"].path == tmp_path / "imagesTr" / "BRATS_001.nii.gz"
    assert len(read_decathlon(tmp_path / "dataset.json", include_test=True)) == 2
    assert detect_layout(tmp_path) == "decathlon"
    meta["modality"] = {"0": "MRI"}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(UnknownModalityError, match=r"'MRI'.*dataset\.json"):
        read_decathlon(tmp_path)
    (subject,) = read_decathlon(tmp_path, modality_map={"MRI": "t1"})
    assert subject.images["t1"].channel is None


def test_nnunet_v2(tmp_path: Path) -> None:
    meta = {
        "channel_names": {"0": "T2", "1": "ADC"},
        "file_ending": ".nii.gz",
        "labels": {"background": 0},
    }
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    _touch(tmp_path / "imagesTr" / "case_001_0000.nii.gz")
    _touch(tmp_path / "imagesTr" / "case_001_0001.nii.gz")
    _touch(tmp_path / "labelsTr" / "case_001.nii.gz")
    (subject,) = read_subjects(tmp_path)
    assert subject.subject_id == "case_001" and subject.modalities == ("t2", "adc")
    assert subject.label_map is not None


def test_bids_sessions_participants_and_unknown_suffixes(tmp_path: Path) -> None:
    (tmp_path / "participants.tsv").write_text(
        "participant_id\tage\tsex\nsub-01\t31\tF\nsub-02\tn/a\tM\n"
    )
    _touch(tmp_path / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T1w.nii.gz")
    _touch(tmp_path / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_FLAIR.nii.gz")
    _touch(tmp_path / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_T2w.nii.gz")
    _touch(tmp_path / "sub-02" / "anat" / "sub-02_run-1_T1w.nii.gz")
    _touch(tmp_path / "sub-02" / "anat" / "sub-02_run-2_T1w.nii.gz")
    _touch(tmp_path / "sub-02" / "anat" / "sub-02_defacemask.nii.gz")
    _touch(tmp_path / "sub-02" / "anat" / "sub-02_T1w.json")
    assert detect_layout(tmp_path) == "bids"
    with pytest.warns(UserWarning) as rec:
        subjects = read_bids(tmp_path)
    messages = " ".join(str(w.message) for w in rec)
    assert "defacemask (1)" in messages and "first file in name order" in messages
    assert [(s.subject_id, s.session, s.modalities) for s in subjects] == [
        ("sub-01", "ses-1", ("flair", "t1")),
        ("sub-01", "ses-2", ("t2",)),
        ("sub-02", None, ("t1",)),
    ]
    assert subjects[0].labels == {"age": 31, "sex": "F"}
    assert subjects[2].labels == {"sex": "M"}
    assert subjects[2].images["t1"].path.name == "sub-02_run-1_T1w.nii.gz"
    with pytest.raises(UnknownModalityError, match="defacemask"):
        read_bids(tmp_path, on_unknown="raise")


def test_nnssl_json(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("nnssl_raw", str(tmp_path / "raw"))
    meta = {
        "collection_index": 1,
        "collection_name": "OpenMind",
        "datasets": {
            "ds001": {
                "dataset_index": "ds001",
                "name": "ds001",
                "subjects": {
                    "sub-01": {
                        "subject_id": "sub-01",
                        "subject_info": {"age": 30, "sex": "M", "extra": {"nested": 1}},
                        "sessions": {
                            "ses-1": {
                                "session_id": "ses-1",
                                "session_info": None,
                                "images": [
                                    {
                                        "name": "a",
                                        "image_path": "$nnssl_raw/ds001/a_T1w.nii.gz",
                                        "modality": "T1w",
                                    },
                                    {
                                        "name": "b",
                                        "image_path": "rel/b_FLAIR.nii.gz",
                                        "modality": "FLAIR",
                                    },
                                    {"name": "c", "image_path": "c.nii.gz", "modality": "MP2RAGE"},
                                ],
                            }
                        },
                    }
                },
            },
            "ds002": {
                "dataset_index": "ds002",
                "subjects": [
                    {
                        "subject_id": "sub-01",
                        "sessions": [
                            {
                                "session_id": "1",
                                "images": [
                                    {"name": "d", "image_path": "/abs/d.nii.gz", "modality": "T2w"}
                                ],
                            }
                        ],
                    }
                ],
            },
        },
    }
    path = tmp_path / "pretrain_data.json"
    path.write_text(json.dumps(meta))
    assert detect_layout(path) == "nnssl" and detect_layout(tmp_path) == "nnssl"
    with pytest.warns(UserWarning, match=r"MP2RAGE \(1\)"):
        subjects = read_nnssl_json(path)
    assert [(s.subject_id, s.session, s.dataset) for s in subjects] == [
        ("ds001/sub-01", "ses-1", "ds001"),
        ("ds002/sub-01", "1", "ds002"),
    ]
    s = subjects[0]
    assert s.images["t1"].path == tmp_path / "raw" / "ds001" / "a_T1w.nii.gz"
    assert s.images["flair"].path == tmp_path / "rel" / "b_FLAIR.nii.gz"
    assert s.labels == {"age": 30, "sex": "M"}
    monkeypatch.delenv("nnssl_raw")
    with pytest.raises(ManifestError, match=r"\$nnssl_raw"):
        read_nnssl_json(path)


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text(text)
    return path


def test_csv_manifest(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "subject,modality,path,age,grade\n"
        "s01,T1w,s01/t1.nii.gz,54,II\n"
        "s01,FLAIR,/abs/flair.nii.gz,54,II\n"
        "s01,seg,s01/seg.nii.gz,54,II\n"
        "s02,t2,s02/t2.nii.gz,,III\n",
    )
    assert detect_layout(path) == "csv"
    s1, s2 = read_subjects(path)
    assert s1.modalities == ("t1", "flair")
    assert s1.images["t1"].path == tmp_path / "s01" / "t1.nii.gz"
    assert s1.images["flair"].path == Path("/abs/flair.nii.gz")
    assert s1.label_map == tmp_path / "s01" / "seg.nii.gz"
    assert s1.labels == {"age": 54, "grade": "II"}
    assert s2.labels == {"grade": "III"}


def test_csv_duplicate_row(tmp_path: Path) -> None:
    path = _csv(tmp_path, "subject,modality,path\ns01,T1w,a.nii.gz\ns01,t1,b.nii.gz\n")
    with pytest.raises(
        ManifestError, match=r"manifest.csv, line 3: subject 's01' is named twice for modality 't1'"
    ):
        read_csv_manifest(path)


def test_csv_unknown_modality(tmp_path: Path) -> None:
    path = _csv(tmp_path, "subject,modality,path\ns01,Banana,a.nii.gz\n")
    with pytest.raises(UnknownModalityError, match=r"'Banana' in .*manifest.csv, line 2"):
        read_csv_manifest(path)


def test_csv_missing_column_and_conflicting_labels(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="missing column"):
        read_csv_manifest(_csv(tmp_path, "subject,path\ns01,a.nii.gz\n"))
    conflict = "subject,modality,path,age\ns01,t1,a.nii.gz,3\ns01,t2,b.nii.gz,4\n"
    with pytest.raises(ManifestError, match="age=4"):
        read_csv_manifest(_csv(tmp_path, conflict))


def test_csv_rows_load_through_the_dataset(tmp_path: Path, write_nifti) -> None:
    from lightly_topo.data import MultiModalVolumeDataset

    vol = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
    write_nifti(tmp_path / "a_t1.nii.gz", vol)
    write_nifti(tmp_path / "a_t2.nii.gz", vol * 2)
    path = _csv(tmp_path, "subject,modality,path,site\na,T1w,a_t1.nii.gz,X\na,T2w,a_t2.nii.gz,X\n")
    ds = MultiModalVolumeDataset(path)
    item = ds[0]
    assert list(item["images"]) == ["t1", "t2"] and item["labels"] == {"site": "X"}


def test_unknown_layout_name(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="unknown layout 'foo'"):
        read_subjects(tmp_path, layout="foo")
