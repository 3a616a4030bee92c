"""SyntheticBrains: item format, determinism, options, errors and the NIfTI round trip."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from lightly_topo.data.errors import (
    EmptyDatasetError,
    LayoutError,
    MissingFileError,
    UnknownModalityError,
)
from lightly_topo.data.synthetic import (
    LESION_LABELS,
    STRUCTURES,
    SyntheticBrains,
    lesion_schedule,
    write_brats_folder,
)
from lightly_topo.data.synthetic.structures import INTRACRANIAL_STRUCTURES


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The generator is built for one thread per process (DataLoader workers); several
    threads on small volumes only add synchronisation cost, badly so on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _same_item(a: dict, b: dict) -> bool:
    if a["subject_id"] != b["subject_id"] or a["labels"] != b["labels"]:
        return False
    if (a["label_map"] is None) != (b["label_map"] is None):
        return False
    if a["label_map"] is not None and not torch.equal(a["label_map"], b["label_map"]):
        return False
    return all(torch.equal(a["images"][m], b["images"][m]) for m in a["images"])


def test_item_format() -> None:
    dataset = SyntheticBrains(3, size=24, modalities=("T1w", "t1c", "T2w", "FLAIR", "PDw"))
    item = dataset[2]
    assert set(item) == {
        "subject_id",
        "session",
        "images",
        "mask",
        "modality_names",
        "label_map",
        "labels",
        "affine",
    }
    assert item["subject_id"] == "synth-0002"
    assert item["session"] is None
    assert item["modality_names"] == ("t1", "t1ce", "t2", "flair", "pd")
    assert dataset.modality_names == item["modality_names"]
    assert list(item["images"]) == list(item["modality_names"])
    for image in item["images"].values():
        assert image.dtype == torch.float32
        assert image.shape == (1, 24, 24, 24)
        assert torch.isfinite(image).all()
    assert item["mask"].dtype == torch.bool and item["mask"].shape == (5,) and item["mask"].all()
    assert item["label_map"].dtype == torch.int64 and item["label_map"].shape == (1, 24, 24, 24)
    assert item["affine"].dtype == torch.float64 and item["affine"].shape == (4, 4)
    assert torch.allclose(
        torch.diag(item["affine"])[:3], torch.full((3,), 220.0 / 24, dtype=torch.float64)
    )
    assert set(item["labels"]) == {"lesion", "lesion_type", "hemisphere", "brain_volume_ml"}
    assert len(dataset) == 3


def test_zscore_over_foreground_and_raw_option() -> None:
    dataset = SyntheticBrains(2, size=24, modalities=("t1", "flair"))
    raw = SyntheticBrains(2, size=24, modalities=("t1", "flair"), normalize=False)
    record = dataset.generate(1)
    foreground = record.foreground[0]
    assert 0.05 < foreground.float().mean() < 0.9
    for name, image in dataset[1]["images"].items():
        values = image[0][foreground].double()
        assert abs(float(values.mean())) < 1e-3
        assert abs(float(values.std()) - 1.0) < 1e-2
        assert torch.equal(raw[1]["images"][name], record.images[name])
    for image in raw[1]["images"].values():
        assert float(image.min()) >= 0.0
        assert 0.6 < float(torch.quantile(image.flatten(), 0.995)) < 1.4


def test_same_seed_gives_identical_tensors() -> None:
    a = SyntheticBrains(4, size=20, modalities=("t1", "t2"), seed=7)
    b = SyntheticBrains(4, size=20, modalities=("t1", "t2"), seed=7)
    assert _same_item(a[1], b[1])
    assert _same_item(a[1], a[1])


def test_different_index_or_seed_gives_different_subject() -> None:
    dataset = SyntheticBrains(8, size=20, modalities=("t1",), lesions=False, seed=3)
    other = SyntheticBrains(8, size=20, modalities=("t1",), lesions=False, seed=4)
    assert not torch.equal(dataset.generate(0).anatomy, dataset.generate(6).anatomy)
    assert not torch.equal(dataset[0]["images"]["t1"], dataset[6]["images"]["t1"])
    assert not torch.equal(dataset[0]["images"]["t1"], other[0]["images"]["t1"])


def test_items_do_not_depend_on_access_order_or_global_rng() -> None:
    forward = SyntheticBrains(5, size=20, modalities=("t1", "flair"))
    backward = SyntheticBrains(5, size=20, modalities=("t1", "flair"))
    first = [forward[i] for i in (0, 3, 4)]
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 (the legacy global state must stay untouched)
    torch_state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002
    last = [backward[i] for i in (4, 3, 0)]
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002
    for a, b in zip(first, reversed(last)):
        assert _same_item(a, b)
    assert _same_item(forward[-1], forward[4])


def test_parts_of_a_subject_do_not_depend_on_other_options() -> None:
    t1_t2 = SyntheticBrains(3, size=20, modalities=("t1", "t2"), seed=2, normalize=False)
    t2_flair = SyntheticBrains(3, size=20, modalities=("t2", "flair"), seed=2, normalize=False)
    healthy = SyntheticBrains(3, size=20, modalities=("t2",), seed=2, lesions=False)
    a, b, c = t1_t2.generate(1), t2_flair.generate(1), healthy.generate(1)
    assert torch.equal(a.images["t2"], b.images["t2"])
    assert torch.equal(a.anatomy, c.anatomy)
    assert (a.lesion_map > 0).any() and not (c.lesion_map > 0).any()
    far = ~torch.from_numpy(
        np.asarray(torch.nn.functional.max_pool3d(a.lesion_map.float()[None], 7, 1, 3)[0] > 0)
    )
    assert torch.allclose(a.images["t2"][far], c.images["t2"][far])


@pytest.mark.parametrize("size", [16, 33, 40])
def test_any_size(size: int) -> None:
    dataset = SyntheticBrains(2, size=size, modalities=("t2",))
    record = dataset.generate(1)
    item = dataset[1]
    assert item["images"]["t2"].shape == (1, size, size, size)
    assert item["label_map"].shape == (1, size, size, size)
    assert record.anatomy.shape == (1, size, size, size)
    brain = (record.tissue[0] >= 2) & (record.tissue[0] <= 4)
    assert brain.float().mean() > 0.05
    assert (item["label_map"] > 0).any()  # index 1 is a tumour, even on small grids


def test_no_lesions_and_transform() -> None:
    dataset = SyntheticBrains(
        6, size=16, modalities=("t1",), lesions=False, transform=lambda item: item["labels"]
    )
    assert [dataset[i]["lesion"] for i in range(6)] == [0] * 6
    assert dataset[1]["lesion_type"] == "none" and dataset[1]["hemisphere"] == "none"
    assert SyntheticBrains(2, size=16, modalities=("t1",), lesions=False)[1]["label_map"] is None


def test_balanced_labels_for_any_length() -> None:
    for n in (6, 7, 12, 13):
        dataset = SyntheticBrains(n, size=16)
        labels = [dataset.subject_labels(i) for i in range(n)]
        for key in ("lesion_type", "hemisphere"):
            counts = Counter(str(label[key]) for label in labels)
            assert len(counts) == 3
            assert max(counts.values()) - min(counts.values()) <= 1, (n, key, counts)
        assert all((lab["lesion"] == 1) == (lab["lesion_type"] != "none") for lab in labels)
    tumour_only = SyntheticBrains(8, size=16, lesion_types=("tumour",))
    counts = Counter(tumour_only.subject_labels(i)["lesion"] for i in range(8))
    assert counts == {0: 4, 1: 4}
    assert len(lesion_schedule()) == 6


def test_item_labels_match_schedule() -> None:
    dataset = SyntheticBrains(6, size=16, modalities=("t1",))
    for i in (0, 1, 2, 5):
        labels = dataset[i]["labels"]
        assert {
            k: labels[k] for k in ("lesion", "lesion_type", "hemisphere")
        } == dataset.subject_labels(i)


def test_skull_strip_zeroes_outside_the_intracranial_volume() -> None:
    dataset = SyntheticBrains(1, size=24, modalities=("t1",), skull_strip=True, normalize=False)
    record = dataset.generate(0)
    inside = torch.isin(record.anatomy[0], torch.tensor(INTRACRANIAL_STRUCTURES))
    assert torch.equal(record.foreground[0], inside)
    assert float(record.images["t1"][0][~inside].abs().max()) == 0.0
    assert float(record.images["t1"][0][inside].min()) > 0.0
    assert not inside[record.anatomy[0] == STRUCTURES["skull"]].any()


def test_bad_arguments_raise() -> None:
    with pytest.raises(UnknownModalityError, match="dwi"):
        SyntheticBrains(2, modalities=("t1", "dwi"))
    with pytest.raises(UnknownModalityError, match="nonsense"):
        SyntheticBrains(2, modalities=("nonsense",))
    with pytest.raises(ValueError, match="twice"):
        SyntheticBrains(2, modalities=("t1", "T1w"))
    with pytest.raises(ValueError, match="size"):
        SyntheticBrains(2, size=8)
    with pytest.raises(ValueError, match="n_subjects"):
        SyntheticBrains(0)
    with pytest.raises(ValueError, match="seed"):
        SyntheticBrains(2, seed=-1)
    with pytest.raises(ValueError, match="lesion_types"):
        SyntheticBrains(2, lesion_types=("cyst",))
    with pytest.raises(IndexError, match="out of range"):
        SyntheticBrains(2, size=16)[2]
    with pytest.raises(MissingFileError, match="does not exist"):
        SyntheticBrains(2, label_maps="/nonexistent/label_maps")
    with pytest.raises(ValueError, match="layout"):
        SyntheticBrains(1, size=16).save("/tmp/never-written", layout="bids")


def test_empty_label_map_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(EmptyDatasetError, match="no NIfTI"):
        SyntheticBrains(2, label_maps=tmp_path)


def test_save_round_trip(tmp_path: Path) -> None:
    dataset = SyntheticBrains(3, size=20, modalities=("t1", "t1ce", "t2", "flair"))
    root = dataset.save(tmp_path / "brats", indices=[0, 1])
    assert sorted(p.name for p in root.iterdir()) == ["labels.csv", "synth-0000", "synth-0001"]
    record = dataset.generate(1)
    case = root / "synth-0001"
    assert sorted(p.name for p in case.iterdir()) == [
        f"synth-0001_{s}.nii.gz" for s in ("flair", "seg", "t1", "t1ce", "t2")
    ]
    for name in ("t1", "t1ce", "t2", "flair"):
        image = nib.load(str(case / f"synth-0001_{name}.nii.gz"))
        assert image.shape == (20, 20, 20)
        assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
        assert np.allclose(image.affine, record.affine.numpy())
        assert np.array_equal(np.asarray(image.dataobj), record.images[name][0].numpy())
    seg = np.asarray(nib.load(str(case / "synth-0001_seg.nii.gz")).dataobj)
    assert np.array_equal(seg, record.lesion_map[0].numpy())
    assert set(np.unique(seg)) <= set(LESION_LABELS.values())
    with open(root / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["subject_id"] for r in rows] == ["synth-0000", "synth-0001"]
    assert rows[1]["lesion_type"] == "tumour" and rows[1]["hemisphere"] == "left"
    assert rows[0]["lesion"] == "0"
    with pytest.raises(LayoutError, match="already exists"):
        write_brats_folder(dataset, root, indices=[0])
    write_brats_folder(dataset, root, indices=[0], overwrite=True, anatomy=True)
    anatomy = np.asarray(nib.load(str(root / "synth-0000" / "synth-0000_anatomy.nii.gz")).dataobj)
    assert np.array_equal(anatomy, dataset.generate(0).anatomy[0].numpy())


def test_saved_brats_folder_reads_back_with_all_modalities_and_labels(tmp_path: Path) -> None:
    from lightly_topo.data import read_brats

    brains = SyntheticBrains(6, size=16, modalities=("t1", "t2", "pd", "flair"), seed=3)
    brains.save(tmp_path)
    subjects = read_brats(tmp_path, labels_csv=tmp_path / "labels.csv", id_column="subject_id")
    assert len(subjects) == 6
    for subject in subjects:
        assert set(subject.modalities) == {"t1", "t2", "pd", "flair"}
        assert subject.labels["lesion_type"] in {"none", "tumour", "wmh"}
        assert subject.labels["hemisphere"] in {"none", "left", "right"}
