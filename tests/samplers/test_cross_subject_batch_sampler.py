from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from lightly_topo.samplers import CrossSubjectBatchSampler, ModalityPairDataset

NAMES = ("t1", "t1ce", "t2", "flair")


def _setup(num_subjects: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Two scans for every third subject; random availability with at least two modalities."""
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    rows = []
    for k in range(num_subjects):
        for _ in range(2 if k % 3 == 0 else 1):
            ids.append(f"s{k:03d}")
            row = np.zeros(len(NAMES), dtype=bool)
            row[rng.choice(len(NAMES), size=rng.integers(2, len(NAMES) + 1), replace=False)] = True
            rows.append(row)
    return ids, np.stack(rows)


def test_batches_distinct_subjects_available_pairs_full_coverage() -> None:
    ids, mask = _setup(25)
    sampler = CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=4, min_subjects=3, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 7
        seen: list[str] = []
        for batch in batches:
            subjects = [ids[i] for i, _ in batch]
            assert len(set(subjects)) == len(subjects) >= 3
            for index, (a, b) in batch:
                assert NAMES.index(a) < NAMES.index(b)
                assert mask[index, NAMES.index(a)] and mask[index, NAMES.index(b)]
            seen += subjects
        # 25 subjects, batches of 4: the last batch (1 subject) is padded to 3 from earlier ones.
        assert set(seen) == set(ids)
        assert len(seen) == 27


def test_pairs_balanced_when_all_available() -> None:
    ids = [f"s{k}" for k in range(60)]
    mask = np.ones((60, 4), dtype=bool)
    sampler = CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=6, seed=0)
    counts = Counter(pair for batch in sampler for _, pair in batch)
    assert set(counts) == set(itertools.combinations(NAMES, 2))
    assert set(counts.values()) == {10}


def test_pairs_balanced_under_constraints() -> None:
    # 20 scans only have (t1, t2); 40 have all four modalities. Perfect balance over the six
    # pairs is 10 each: the constrained scans fill (t1, t2) with 20, so the 40 others spread
    # over the remaining five pairs, 8 each, and never pick (t1, t2).
    ids = [f"s{k}" for k in range(60)]
    mask = np.ones((60, 4), dtype=bool)
    mask[::3, 1] = False
    mask[::3, 3] = False
    for seed in range(10):
        sampler = CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=5, seed=seed)
        counts = Counter(pair for batch in sampler for _, pair in batch)
        assert counts[("t1", "t2")] == 20
        assert {v for k, v in counts.items() if k != ("t1", "t2")} == {8}


def test_distributed_disjoint_equal_lengths() -> None:
    ids, mask = _setup(31)
    per_rank = []
    for rank in range(3):
        sampler = CrossSubjectBatchSampler(
            ids, mask, NAMES, batch_size=4, seed=2, num_replicas=3, rank=rank
        )
        sampler.set_epoch(5)
        per_rank.append([{ids[i] for i, _ in batch} for batch in sampler])
    assert len({len(b) for b in per_rank}) == 1
    sets = [set().union(*b) for b in per_rank]
    for a, b in itertools.combinations(sets, 2):
        assert not a & b
    assert set().union(*sets) == set(ids)
    assert all(len(batch) >= 2 for batches in per_rank for batch in batches)


def test_determinism_and_reshuffle() -> None:
    ids, mask = _setup(20)
    a = CrossSubjectBatchSampler(ids, torch.from_numpy(mask), NAMES, batch_size=4, seed=3)
    b = CrossSubjectBatchSampler(ids, mask.tolist(), NAMES, batch_size=4, seed=3)
    c = CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=4, seed=9)
    assert list(a) == list(b)
    assert list(a) != list(c)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first


def test_ineligible_scans_and_subjects_left_out() -> None:
    ids = ["a", "a", "b", "c", "d"]
    mask = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0], [1, 0, 1, 0]], bool)
    sampler = CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=3, seed=0)
    assert sampler.excluded_subjects == ("c",)
    indices = [i for batch in sampler for i, _ in batch]
    assert sorted(indices) == [1, 2, 4]


def test_drop_last() -> None:
    ids, mask = _setup(23)
    sampler = CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=5, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4
    assert all(len(b) == 5 for b in batches)


def test_errors() -> None:
    ids, mask = _setup(6)
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=1)
    with pytest.raises(ValueError, match="min_subjects"):
        CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=4, min_subjects=5)
    with pytest.raises(ValueError, match="min_subjects"):
        CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=8, min_subjects=7)
    with pytest.raises(ValueError, match=r"shape \(N, M\)"):
        CrossSubjectBatchSampler(ids[:-1], mask, NAMES, batch_size=4)
    with pytest.raises(ValueError, match=r"shape \(N, M\)"):
        CrossSubjectBatchSampler(ids, mask, NAMES[:3], batch_size=4)
    with pytest.raises(ValueError, match="two available modalities"):
        CrossSubjectBatchSampler(ids, np.eye(len(ids), 4, dtype=bool), NAMES, batch_size=4)
    with pytest.raises(ValueError, match="duplicates"):
        CrossSubjectBatchSampler(ids, mask, ("t1", "t1", "t2", "pd"), batch_size=4)
    with pytest.raises(ValueError, match="min_subjects"):
        CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=4, num_replicas=4, rank=0)
    with pytest.raises(ValueError, match="boolean"):
        CrossSubjectBatchSampler(ids, mask * 2, NAMES, batch_size=4)


class _Scans(Dataset):
    def __init__(self, ids: list[str], mask: np.ndarray) -> None:
        self.ids, self.mask = ids, torch.from_numpy(mask)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {
            "index": torch.tensor(index),
            "subject_id": self.ids[index],
            "mask": self.mask[index],
        }


def _collate(items: list[dict]) -> dict:
    return {
        "index": torch.stack([item["index"] for item in items]),
        "subject_id": [item["subject_id"] for item in items],
        "modality_pair": [item["modality_pair"] for item in items],
    }


@pytest.mark.parametrize("num_workers", [0, 2])
def test_with_dataloader(num_workers: int) -> None:
    ids, mask = _setup(13)
    sampler = CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=4, seed=0)
    loader = DataLoader(
        ModalityPairDataset(_Scans(ids, mask)),
        batch_sampler=sampler,
        collate_fn=_collate,
        num_workers=num_workers,
    )
    expected = list(sampler)
    got = list(loader)
    assert len(got) == len(expected)
    for batch, reference in zip(got, expected):
        assert batch["index"].tolist() == [i for i, _ in reference]
        assert batch["modality_pair"] == [pair for _, pair in reference]
        assert len(set(batch["subject_id"])) == len(batch["subject_id"])


def test_modality_pair_dataset() -> None:
    data = ModalityPairDataset([{"a": 1}, {"a": 2}])
    assert len(data) == 2
    assert data[1] == {"a": 2}
    assert data[(0, ("t1", "t2"))] == {"a": 1, "modality_pair": ("t1", "t2")}
    with pytest.raises(TypeError, match="mappings"):
        ModalityPairDataset([1, 2])[(0, ("t1", "t2"))]
    with pytest.raises(TypeError, match="mod_a"):
        data[(0, "t1")]  # type: ignore[index]


def test_epoch_reachable_like_lightning() -> None:
    # PyTorch Lightning calls dataloader.batch_sampler.sampler.set_epoch(epoch) every epoch
    # (lightning_fabric.utilities.data._set_sampler_epoch); not imported here: it is slow.
    ids, mask = _setup(10)
    sampler = CrossSubjectBatchSampler(ids, mask, NAMES, batch_size=4)
    loader = DataLoader(ModalityPairDataset(_Scans(ids, mask)), batch_sampler=sampler)
    loader.batch_sampler.sampler.set_epoch(2)
    assert sampler.epoch == 2
