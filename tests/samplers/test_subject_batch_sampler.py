from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from lightly_topo.samplers import SubjectBatchSampler


def _subject_ids(num_subjects: int, scans: int = 3) -> list[str]:
    # Subject k has 1 + k % scans scans, interleaved so scans of a subject are not adjacent.
    ids = []
    for rep in range(scans):
        ids += [f"s{k:03d}" for k in range(num_subjects) if k % scans >= rep]
    return ids


def _subjects_of(batch: list[int], ids: list[str]) -> list[str]:
    return [ids[i] for i in batch]


@pytest.mark.parametrize("batch_size", [1, 4, 7])
def test_no_duplicate_subject_and_full_coverage(batch_size: int) -> None:
    ids = _subject_ids(23)
    sampler = SubjectBatchSampler(ids, batch_size=batch_size, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == math.ceil(23 / batch_size)
        seen: list[str] = []
        for batch in batches:
            subjects = _subjects_of(batch, ids)
            assert len(set(subjects)) == len(subjects)
            seen += subjects
        assert sorted(seen) == sorted(set(ids))


def test_scans_take_turns_across_epochs() -> None:
    ids = ["a", "b", "a", "c", "a", "b"]
    sampler = SubjectBatchSampler(ids, batch_size=2, seed=0)
    chosen: dict[str, set[int]] = {"a": set(), "b": set(), "c": set()}
    for epoch in range(6):
        sampler.set_epoch(epoch)
        for batch in sampler:
            for index in batch:
                chosen[ids[index]].add(index)
    assert chosen == {"a": {0, 2, 4}, "b": {1, 5}, "c": {3}}


@pytest.mark.parametrize(
    ("num_subjects", "replicas", "batch_size"), [(23, 2, 4), (10, 3, 3), (9, 4, 2), (7, 3, 8)]
)
def test_distributed_disjoint_equal_lengths(
    num_subjects: int, replicas: int, batch_size: int
) -> None:
    ids = _subject_ids(num_subjects)
    per_rank = []
    for rank in range(replicas):
        sampler = SubjectBatchSampler(ids, batch_size, seed=1, num_replicas=replicas, rank=rank)
        sampler.set_epoch(2)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        for batch in batches:
            subjects = _subjects_of(batch, ids)
            assert len(set(subjects)) == len(subjects)
        per_rank.append([set(_subjects_of(b, ids)) for b in batches])
    assert len({len(b) for b in per_rank}) == 1
    union: set[str] = set()
    for rank, batches in enumerate(per_rank):
        subjects = set().union(*batches)
        for other in per_rank[rank + 1 :]:
            assert not subjects & set().union(*other)
        union |= subjects
    assert union == set(ids)
    # More than one batch: batch sizes agree across ranks.
    if len(per_rank[0]) > 1:
        sizes = [[len(b) for b in batches] for batches in per_rank]
        assert all(s == sizes[0] for s in sizes)


def test_padding_repeats_subject_in_another_batch() -> None:
    # 9 subjects on 2 ranks, batch 4: rank 0 has 5 subjects, rank 1 has 4 -> 2 batches each.
    ids = [f"s{k}" for k in range(9)]
    sampler = SubjectBatchSampler(ids, 4, seed=0, num_replicas=2, rank=1)
    batches = list(sampler)
    assert [len(b) for b in batches] == [4, 1]
    assert batches[1][0] in batches[0]


def test_drop_last() -> None:
    ids = _subject_ids(23)
    sampler = SubjectBatchSampler(ids, 5, seed=0, drop_last=True, num_replicas=2, rank=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == (23 // 2) // 5
    assert all(len(b) == 5 for b in batches)


def test_determinism_and_reshuffle() -> None:
    ids = _subject_ids(30)
    a = SubjectBatchSampler(ids, 4, seed=7)
    b = SubjectBatchSampler(ids, 4, seed=7)
    c = SubjectBatchSampler(ids, 4, seed=8)
    assert list(a) == list(b)
    assert list(a) != list(c)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first


def test_no_shuffle_keeps_order() -> None:
    ids = ["a", "b", "a", "c"]
    sampler = SubjectBatchSampler(ids, 2, shuffle=False)
    assert list(sampler) == [[0, 1], [3]]


def test_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        SubjectBatchSampler([], 2)
    with pytest.raises(ValueError, match="batch_size"):
        SubjectBatchSampler(["a"], 0)
    with pytest.raises(ValueError, match="num_replicas"):
        SubjectBatchSampler(["a", "a"], 1, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="rank"):
        SubjectBatchSampler(["a", "b"], 1, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="drop_last"):
        SubjectBatchSampler(["a", "b", "c"], 4, drop_last=True)
    with pytest.raises(ValueError, match="seed"):
        SubjectBatchSampler(["a"], 1, seed=-1)
    with pytest.raises(TypeError, match=r"subject_ids\[1\]"):
        SubjectBatchSampler(["a", 3], 1)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="str"):
        SubjectBatchSampler("abc", 1)


class _Scans(Dataset):
    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {"index": torch.tensor(index), "subject_id": self.ids[index]}


def test_with_dataloader() -> None:
    ids = _subject_ids(11)
    sampler = SubjectBatchSampler(ids, 4, seed=0)
    loader = DataLoader(_Scans(ids), batch_sampler=sampler)
    seen = Counter()
    for batch in loader:
        assert len(set(batch["subject_id"])) == len(batch["subject_id"])
        assert [ids[i] for i in batch["index"].tolist()] == batch["subject_id"]
        seen.update(batch["subject_id"])
    assert set(seen) == set(ids) and set(seen.values()) == {1}


def test_replicas_default_from_torch_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    import lightly_topo.samplers._partition as partition

    monkeypatch.setattr(partition.dist, "is_available", lambda: True)
    monkeypatch.setattr(partition.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(partition.dist, "get_world_size", lambda: 3)
    monkeypatch.setattr(partition.dist, "get_rank", lambda: 2)
    sampler = SubjectBatchSampler([f"s{k}" for k in range(9)], 2)
    assert (sampler.num_replicas, sampler.rank) == (3, 2)
    assert len(sampler) == 2


def test_epoch_reachable_like_lightning() -> None:
    # PyTorch Lightning calls dataloader.batch_sampler.sampler.set_epoch(epoch) every epoch
    # (lightning_fabric.utilities.data._set_sampler_epoch); not imported here: it is slow.
    ids = _subject_ids(12)
    sampler = SubjectBatchSampler(ids, 4, seed=0)
    loader = DataLoader(_Scans(ids), batch_sampler=sampler)
    loader.batch_sampler.sampler.set_epoch(3)
    assert sampler.epoch == 3
