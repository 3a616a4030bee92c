from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lightly_topo.data import (
    CorruptFileError,
    EmptyDatasetError,
    InvalidVolumeError,
    ManifestError,
    MissingFileError,
    ModalityFile,
    MultiModalVolumeDataset,
    RegistrationError,
    Subject,
    UnknownModalityError,
    collate_subjects,
)
from lightly_topo.data import dataset as dataset_module


def test_item_format(make_subject) -> None:
    ds = MultiModalVolumeDataset(
        [make_subject("s1", ("t1", "flair"), labels={"age": 40, "sex": "F"})]
    )
    assert ds.modality_names == ("t1", "flair")
    item = ds[0]
    assert item["subject_id"] == "s1" and item["session"] is None
    assert list(item["images"]) == ["t1", "flair"]
    for img in item["images"].values():
        assert img.dtype == torch.float32 and tuple(img.shape) == (1, 16, 16, 16)
    assert item["mask"].dtype == torch.bool and item["mask"].tolist() == [True, True]
    assert item["label_map"].dtype == torch.int64 and tuple(item["label_map"].shape) == (
        1,
        16,
        16,
        16,
    )
    assert set(item["label_map"].unique().tolist()) == {0, 1}
    assert item["labels"] == {"age": 40, "sex": "F"}
    assert item["affine"].dtype == torch.float64 and tuple(item["affine"].shape) == (4, 4)


def test_zscore_over_foreground(make_subject) -> None:
    item = MultiModalVolumeDataset([make_subject()])[0]
    t1 = item["images"]["t1"]
    fg = t1 != 0  # the background stays 0 after z-scoring
    assert 0 < int(fg.sum()) < fg.numel()
    assert abs(float(t1[fg].mean())) < 0.05 and abs(float(t1[fg].std()) - 1) < 0.05


def test_missing_modality_is_masked_not_zero_filled(make_subject) -> None:
    a = make_subject("a", ("t1", "t2", "flair"))
    b = make_subject("b", ("t1", "flair"))
    ds = MultiModalVolumeDataset([a, b])
    assert ds.modality_names == ("t1", "t2", "flair")
    item = ds[1]
    assert "t2" not in item["images"]
    assert item["mask"].tolist() == [True, False, True]
    batch = collate_subjects([ds[0], ds[1]])
    assert batch["mask"].tolist() == [[True, True, True], [True, False, True]]
    assert torch.all(batch["image"][1, 1] == 0)


def test_modality_vocabulary_given(make_subject) -> None:
    ds = MultiModalVolumeDataset(
        [make_subject("a", ("t1", "flair"))], modality_names=["T1w", "T2w", "FLAIR"]
    )
    assert ds.modality_names == ("t1", "t2", "flair")
    assert ds[0]["mask"].tolist() == [True, False, True]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with pytest.raises(EmptyDatasetError):
            MultiModalVolumeDataset([make_subject("a", ("t1",))], modality_names=["pd"])
    assert any("none of the modalities" in str(w.message) for w in rec)
    with pytest.raises(UnknownModalityError, match="Banana"):
        MultiModalVolumeDataset([make_subject("a", ("t1",))], modality_names=["Banana"])


def test_cache_cold_then_memory_mapped(make_subject, tmp_path: Path, monkeypatch) -> None:
    subjects = [make_subject(f"s{i}", seed=i) for i in range(2)]
    ds = MultiModalVolumeDataset(subjects, cache_dir=tmp_path / "cache")
    cold = [ds[i] for i in range(2)]
    entries = list((tmp_path / "cache" / "entries").rglob("meta.json"))
    assert len(entries) == 2
    stored = np.load(entries[0].parent / "t1.npy", mmap_mode="r")
    assert stored.dtype == np.float16
    assert np.load(entries[0].parent / "label_map.npy").dtype == np.uint8

    def no_decoding(*args, **kwargs):
        raise AssertionError("NIfTI decoded although the cache holds the subject")

    monkeypatch.setattr(dataset_module, "load_image", no_decoding)
    monkeypatch.setattr(dataset_module, "load_label_map", no_decoding)
    ds2 = MultiModalVolumeDataset(subjects, cache_dir=tmp_path / "cache")
    for i in range(2):
        warm = ds2[i]
        for m in ("t1", "flair"):
            assert torch.equal(warm["images"][m], cold[i]["images"][m])
        assert torch.equal(warm["label_map"], cold[i]["label_map"])
        assert torch.equal(warm["affine"], cold[i]["affine"])


def test_uncached_equals_cached(make_subject, tmp_path: Path) -> None:
    s = make_subject()
    a = MultiModalVolumeDataset([s])[0]
    b = MultiModalVolumeDataset([s], cache_dir=tmp_path / "c")[0]
    assert torch.equal(a["images"]["t1"], b["images"]["t1"])


def test_changed_file_is_never_served_stale(make_subject, tmp_path: Path, write_nifti) -> None:
    s = make_subject()
    ds = MultiModalVolumeDataset(
        [s], cache_dir=tmp_path / "c", normalize=False, image_dtype="float32"
    )
    before = ds[0]["images"]["t1"].clone()
    path = s.images["t1"].path
    st = path.stat()
    write_nifti(path, np.full((16, 16, 16), 3.0, np.float32))
    import os

    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = ds[0]["images"]["t1"]
    assert not torch.equal(before, after)
    assert torch.all(after == 3.0)


def test_settings_are_part_of_the_key(make_subject, tmp_path: Path) -> None:
    s = make_subject()
    full = MultiModalVolumeDataset([s], cache_dir=tmp_path / "c")[0]
    cropped = MultiModalVolumeDataset([s], cache_dir=tmp_path / "c", crop_foreground=True)[0]
    assert full["images"]["t1"].shape != cropped["images"]["t1"].shape


def test_crop_foreground_updates_affine(make_subject) -> None:
    s = make_subject(shape=(20, 20, 20))
    full = MultiModalVolumeDataset([s], normalize=False, image_dtype="float32")[0]
    crop = MultiModalVolumeDataset(
        [s], normalize=False, image_dtype="float32", crop_foreground=True, crop_margin=1
    )[0]
    d, h, w = crop["images"]["t1"].shape[1:]
    assert d < 20 and h < 20 and w < 20
    start = torch.linalg.solve(
        full["affine"], crop["affine"] @ torch.tensor([0.0, 0, 0, 1], dtype=torch.float64)
    )
    i, j, k = (round(float(v)) for v in start[:3])
    assert torch.equal(crop["images"]["t1"][0, 0, 0, 0], full["images"]["t1"][0, i, j, k])
    assert torch.equal(crop["label_map"][0], full["label_map"][0, i : i + d, j : j + h, k : k + w])


def test_reorientation_to_ras(make_subject) -> None:
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    s = make_subject(affine=lps)
    item = MultiModalVolumeDataset([s])[0]
    a = item["affine"].numpy()
    assert a[0, 0] > 0 and a[1, 1] > 0 and a[2, 2] > 0


def test_resampling_to_spacing(make_subject) -> None:
    item = MultiModalVolumeDataset([make_subject(shape=(17, 17, 17))], spacing=2.0)[0]
    assert tuple(item["images"]["t1"].shape) == (1, 9, 9, 9)
    assert tuple(item["label_map"].shape) == (1, 9, 9, 9)
    np.testing.assert_allclose(np.diag(item["affine"].numpy())[:3], [2.0, 2.0, 2.0])


def test_registration_mismatch_shape_raises_or_resamples(make_subject, write_nifti) -> None:
    s = make_subject("s1", ("t1", "flair"))
    write_nifti(s.images["flair"].path, np.ones((16, 16, 12), np.float32))
    with pytest.raises(RegistrationError, match=r"s1_flair\.nii\.gz.*shape \(16, 16, 12\)"):
        MultiModalVolumeDataset([s])
    item = MultiModalVolumeDataset([s], resample_to="t1")[0]
    assert item["images"]["flair"].shape == item["images"]["t1"].shape == (1, 16, 16, 16)


def test_registration_mismatch_affine(make_subject, write_nifti) -> None:
    s = make_subject("s1", ("t1", "t2"))
    shifted = np.eye(4)
    shifted[0, 3] = 2.0
    write_nifti(s.images["t2"].path, np.ones((16, 16, 16), np.float32), shifted)
    with pytest.raises(RegistrationError, match="affines differ by up to 2 mm"):
        MultiModalVolumeDataset([s])
    item = MultiModalVolumeDataset([s], resample_to="t1", normalize=False, image_dtype="float32")[0]
    t2 = item["images"]["t2"][0]
    # t2 starts 2 mm further along x: its voxel 0 lands on t1's voxel 2.
    assert float((t2[2:] - 1).abs().max()) < 1e-6
    assert float(t2[:2].abs().max()) < 1e-6


def test_label_map_grid_is_checked(make_subject, write_nifti) -> None:
    s = make_subject()
    write_nifti(s.label_map, np.zeros((8, 8, 8), np.uint8))
    with pytest.raises(RegistrationError, match=r"s1_seg\.nii\.gz"):
        MultiModalVolumeDataset([s])


def test_missing_file_at_construction(make_subject) -> None:
    s = make_subject()
    s.images["flair"].path.unlink()
    with pytest.raises(MissingFileError, match=r"s1_flair\.nii\.gz"):
        MultiModalVolumeDataset([s])


def test_corrupt_file_at_construction(make_subject) -> None:
    s = make_subject()
    p = s.images["t1"].path
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(CorruptFileError, match=r"s1_t1\.nii\.gz"):
        MultiModalVolumeDataset([s])


def test_nan_voxels_raise_at_getitem(make_subject, write_nifti) -> None:
    s = make_subject()
    vol = np.ones((16, 16, 16), np.float32)
    vol[0, 0, 0] = np.nan
    write_nifti(s.images["t1"].path, vol)
    ds = MultiModalVolumeDataset([s])
    with pytest.raises(InvalidVolumeError, match=r"s1_t1\.nii\.gz: 1 NaN"):
        ds[0]


def test_constant_volume_gives_zeros_not_nan(make_subject, write_nifti) -> None:
    s = make_subject()
    write_nifti(s.images["t1"].path, np.zeros((16, 16, 16), np.float32))
    item = MultiModalVolumeDataset([s], crop_foreground=True)[0]
    t1 = item["images"]["t1"]
    assert torch.isfinite(t1).all() and torch.all(t1 == 0)
    assert item["mask"].tolist() == [True, True]


def test_skip_bad_subjects_with_warnings(make_subject, write_nifti) -> None:
    good = make_subject("good", seed=1)
    missing = make_subject("missing", seed=2)
    missing.images["t1"].path.unlink()
    nan = make_subject("nan", seed=3)
    vol = np.ones((16, 16, 16), np.float32)
    vol[1, 1, 1] = np.inf
    write_nifti(nan.images["flair"].path, vol)
    with pytest.warns(UserWarning, match=r"skipping subject 'missing'.*missing_t1.nii.gz"):
        ds = MultiModalVolumeDataset([good, missing, nan], on_error="skip")
    assert [s.subject_id for s in ds.subjects] == ["good", "nan"]
    with pytest.warns(UserWarning, match=r"skipping subject 'nan'.*nan_flair.nii.gz.*Inf"):
        item = ds[1]
    assert item["subject_id"] == "good"  # the next subject that loads, in its place
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # remembered as bad: no second decode, no second warning
        assert ds[1]["subject_id"] == "good"


def test_empty_dataset() -> None:
    with pytest.raises(EmptyDatasetError):
        MultiModalVolumeDataset([])


def test_all_subjects_bad_is_empty(make_subject) -> None:
    s = make_subject()
    s.images["t1"].path.unlink()
    with pytest.warns(UserWarning), pytest.raises(EmptyDatasetError):
        MultiModalVolumeDataset([s], on_error="skip")


def test_duplicate_subject_key(make_subject) -> None:
    s = make_subject()
    with pytest.raises(ManifestError, match="'s1' appears twice"):
        MultiModalVolumeDataset([s, s])


def test_alias_modality_keys_are_normalised(make_subject) -> None:
    s = make_subject()
    raw = Subject("raw", {"T1w": s.images["t1"], "FLAIR": s.images["flair"]})
    ds = MultiModalVolumeDataset([raw])
    assert ds.modality_names == ("t1", "flair")
    bad = Subject("bad", {"t1": s.images["t1"], "T1w": ModalityFile("t1", s.images["flair"].path)})
    with pytest.raises(ManifestError, match="two files for modality 't1'"):
        MultiModalVolumeDataset([bad])


def test_transform_is_applied(make_subject) -> None:
    ds = MultiModalVolumeDataset(
        [make_subject()], transform=lambda item: {**item, "extra": torch.ones(2)}
    )
    assert torch.equal(ds[0]["extra"], torch.ones(2))


def test_dataloader_with_collate(make_subject, tmp_path: Path) -> None:
    subjects = [make_subject(f"s{i}", seed=i) for i in range(3)]
    ds = MultiModalVolumeDataset(subjects, cache_dir=tmp_path / "c")
    loader = DataLoader(ds, batch_size=3, collate_fn=collate_subjects)
    batch = next(iter(loader))
    assert tuple(batch["image"].shape) == (3, 2, 16, 16, 16)
    assert tuple(batch["label_map"].shape) == (3, 1, 16, 16, 16)
    assert batch["subject_id"] == ["s0", "s1", "s2"]
    assert batch["labels"] == {"age": [40, 40, 40]}


def test_two_workers_share_the_cache(make_subject, tmp_path: Path) -> None:
    subjects = [make_subject(f"s{i}", seed=i) for i in range(4)]
    ds = MultiModalVolumeDataset(subjects, cache_dir=tmp_path / "c")
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_subjects)
    ids = [sid for batch in loader for sid in batch["subject_id"]]
    assert ids == ["s0", "s1", "s2", "s3"]
    assert len(list((tmp_path / "c" / "entries").rglob("meta.json"))) == 4
    assert list((tmp_path / "c").rglob(".tmp-*")) == []


def test_header_validation_can_be_turned_off(make_subject) -> None:
    s = make_subject()
    p = s.images["t1"].path
    p.write_bytes(p.read_bytes()[:200])
    ds = MultiModalVolumeDataset([s], validate="exists")  # cheap: only existence is checked
    with pytest.raises(CorruptFileError, match=r"s1_t1\.nii\.gz"):
        ds[0]
