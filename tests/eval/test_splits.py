from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lightly_topo.eval.splits import (
    SubjectSplit,
    kfold_subjects,
    label_fraction_subset,
    load_splits,
    save_splits,
    train_test_split_subjects,
)


def _scans(num_subjects: int) -> tuple[list[str], list[str]]:
    """Scan-level subject ids (every fourth subject has two scans) and a 3-class label."""
    ids, labels = [], []
    for k in range(num_subjects):
        for _ in range(2 if k % 4 == 0 else 1):
            ids.append(f"s{k:03d}")
            labels.append(["glioma", "meningioma", "healthy"][k % 3])
    return ids, labels


def test_train_test_disjoint_complete_and_scans_together() -> None:
    ids, labels = _scans(50)
    split = train_test_split_subjects(ids, labels, test_fraction=0.3, seed=1)
    assert not set(split.train) & set(split.test)
    assert set(split.train) | set(split.test) == set(ids)
    assert len(split.test) == 15
    train_idx, test_idx = split.indices(ids)
    assert sorted(train_idx + test_idx) == list(range(len(ids)))
    assert {ids[i] for i in test_idx} == set(split.test)


def test_train_test_stratified() -> None:
    ids, labels = _scans(60)
    label_of = dict(zip(ids, labels))
    split = train_test_split_subjects(ids, label_of, test_fraction=0.25, seed=0)
    counts = Counter(label_of[s] for s in split.test)
    assert counts == {"glioma": 5, "meningioma": 5, "healthy": 5}


def test_groups_stay_together() -> None:
    ids = [f"s{k}" for k in range(30)]
    # Patients present under two ids (e.g. in two datasets).
    groups = {"s0": "p0", "s15": "p0", "s1": "p1", "s16": "p1", "s2": "x", "s3": "x", "s4": "x"}
    together = (("s0", "s15"), ("s1", "s16"), ("s2", "s3", "s4"))
    for seed in range(5):
        split = train_test_split_subjects(ids, test_fraction=0.5, seed=seed, groups=groups)
        folds = kfold_subjects(ids, 4, seed=seed, groups=groups)
        for members in together:
            assert len({s in split.test for s in members}) == 1, (seed, members)
            for fold in folds:
                assert len({s in fold.test for s in members}) == 1, (seed, members)


def test_group_sequence_aligned_with_scans_chains() -> None:
    # Scans of "a" carry keys g1 and g2, so a, b (g2) and c (g1) form one group.
    ids = ["a", "a", "b", "c", "d", "e", "f", "g"]
    groups = ["g1", "g2", "g2", "g1", None, None, None, None]
    for seed in range(4):
        for fold in kfold_subjects(ids, 3, seed=seed, groups=groups):
            assert len({s in fold.test for s in ("a", "b", "c")}) == 1


def test_determinism_and_seed_effect() -> None:
    ids, labels = _scans(40)
    a = train_test_split_subjects(ids, labels, 0.2, seed=4)
    b = train_test_split_subjects(list(reversed(ids)), list(reversed(labels)), 0.2, seed=4)
    c = train_test_split_subjects(ids, labels, 0.2, seed=5)
    assert a == b
    assert a != c
    assert kfold_subjects(ids, 5, labels, seed=1) == kfold_subjects(ids, 5, labels, seed=1)
    assert kfold_subjects(ids, 5, labels, seed=1) != kfold_subjects(ids, 5, labels, seed=2)


def test_kfold_partition_and_stratification() -> None:
    ids, labels = _scans(47)
    label_of = dict(zip(ids, labels))
    folds = kfold_subjects(ids, 5, labels, seed=3)
    assert [f.fold for f in folds] == list(range(5))
    tests = [set(f.test) for f in folds]
    assert sorted(s for t in tests for s in t) == sorted(set(ids))
    for fold in folds:
        assert set(fold.train) == set(ids) - set(fold.test)
    for cls in ("glioma", "meningioma", "healthy"):
        per_fold = [sum(label_of[s] == cls for s in t) for t in tests]
        assert max(per_fold) - min(per_fold) <= 1
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1


def test_label_fraction_subset_stratified_nested() -> None:
    subjects = [f"s{k}" for k in range(40)]
    labels = {s: ("a" if k < 30 else "b") for k, s in enumerate(subjects)}
    small = label_fraction_subset(subjects, labels, 0.1, seed=0)
    large = label_fraction_subset(subjects, labels, 0.5, seed=0)
    assert Counter(labels[s] for s in small) == {"a": 3, "b": 1}
    assert Counter(labels[s] for s in large) == {"a": 15, "b": 5}
    assert set(small) <= set(large)
    assert label_fraction_subset(subjects, labels, 1.0) == tuple(sorted(subjects))
    assert label_fraction_subset(subjects, labels, 0.5, seed=1) != large
    assert len(label_fraction_subset(subjects, None, 0.25)) == 10


def test_label_fraction_subset_errors() -> None:
    subjects = [f"s{k}" for k in range(12)]
    labels = ["a"] * 10 + ["b"] * 2
    with pytest.raises(ValueError, match=r"class 'b' empty.*at least 0.25"):
        label_fraction_subset(subjects, labels, 0.2)
    with pytest.raises(ValueError, match="fraction"):
        label_fraction_subset(subjects, labels, 0.0)
    with pytest.raises(ValueError, match="no label for subject 's11'"):
        label_fraction_subset(subjects, {s: "a" for s in subjects[:-1]}, 0.5)


def test_split_errors() -> None:
    ids, labels = _scans(10)
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split_subjects(ids, test_fraction=1.0)
    with pytest.raises(ValueError, match="at least two"):
        train_test_split_subjects(["a", "a"], test_fraction=0.5)
    with pytest.raises(ValueError, match="empty"):
        train_test_split_subjects(["a", "b", "c"], test_fraction=0.01)
    with pytest.raises(ValueError, match="aligned"):
        train_test_split_subjects(ids, labels[:-1])
    with pytest.raises(ValueError, match="disagree between scans of subject 's000'"):
        train_test_split_subjects(["s000", "s000", "s001"], ["x", "y", "x"])
    with pytest.raises(ValueError, match="n_folds"):
        kfold_subjects(ids, 1)
    with pytest.raises(ValueError, match="lower n_folds"):
        kfold_subjects(["a", "b", "c"], 4)
    with pytest.raises(ValueError, match="seed"):
        kfold_subjects(ids, 2, seed=-1)
    with pytest.raises(ValueError, match="both sides"):
        SubjectSplit(train=("a", "b"), test=("b",), seed=0)
    with pytest.raises(ValueError, match="neither side"):
        SubjectSplit(train=("a",), test=("b",), seed=0).indices(["a", "c"])


def test_json_round_trip(tmp_path: Path) -> None:
    ids, labels = _scans(20)
    folds = kfold_subjects(ids, 4, labels, seed=0)
    for fold in folds:
        assert SubjectSplit.from_dict(json.loads(json.dumps(fold.to_dict()))) == fold
    path = tmp_path / "splits.json"
    save_splits(path, folds)
    assert load_splits(path) == folds
    with pytest.raises(ValueError, match="lacks the keys"):
        SubjectSplit.from_dict({"train": []})
