"""The subject bookkeeping base class shared by the batch samplers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from lightly_topo.samplers import CrossSubjectBatchSampler, SubjectBatchSampler
from lightly_topo.samplers._partition import SubjectSampler, group_by_subject


class _Scans(SubjectSampler[int]):
    """The smallest subclass: batches of dataset indices, padded to ``min_size``."""

    def __init__(
        self,
        subject_ids: Sequence[str],
        batch_size: int,
        min_size: int = 1,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.batch_size = batch_size
        self.min_size = min_size
        super().__init__(True, seed, drop_last, num_replicas, rank)
        self.subjects, self._scans = group_by_subject(subject_ids)
        self._check_and_order_scans("widgets")

    def _epoch_batches(self) -> list[list[int]]:
        return self._scan_batches(self.min_size)


def test_pinned_batches_per_rank_and_epoch() -> None:
    # 7 subjects over 2 ranks: rank 0 has 4, rank 1 has 3; both pad the last batch to 2.
    ids = [f"s{k % 7}" for k in range(10)]
    expected = {
        (0, 0): [[5, 2, 4], [0, 5]],
        (0, 1): [[9, 4, 5], [3, 9]],
        (1, 0): [[6, 8, 3], [6, 8]],
        (1, 1): [[1, 7, 6], [1, 7]],
    }
    for (rank, epoch), batches in expected.items():
        sampler = _Scans(ids, 3, min_size=2, seed=3, num_replicas=2, rank=rank)
        sampler.set_epoch(epoch)
        assert len(sampler) == 2
        assert list(sampler) == batches


def test_samplers_share_the_scan_batches() -> None:
    ids = [f"s{k % 7}" for k in range(10)]
    for rank in range(2):
        plain = SubjectBatchSampler(ids, 3, seed=3, num_replicas=2, rank=rank)
        cross = CrossSubjectBatchSampler(
            ids, [[True, True]] * 10, ("a", "b"), 3, seed=3, num_replicas=2, rank=rank
        )
        base = _Scans(ids, 3, min_size=2, seed=3, num_replicas=2, rank=rank)
        for epoch in range(3):
            for sampler in (plain, cross, base):
                sampler.set_epoch(epoch)
            # The plain sampler pads to 1, so it differs only past the rank's own subjects.
            assert [[i for i, _ in b] for b in cross] == list(base)
            assert list(plain)[:-1] == list(base)[:-1]


def test_ranks_split_subjects_and_scans_take_turns() -> None:
    ids = [f"s{k % 12}" for k in range(30)]  # s0..s5 have 3 scans, s6..s11 have 2
    _, scans = group_by_subject(ids)
    shown: Counter[int] = Counter()
    for epoch in range(6):
        seen: list[str] = []
        for rank in range(3):
            sampler = _Scans(ids, 2, seed=1, num_replicas=3, rank=rank)
            sampler.set_epoch(epoch)
            indices = [i for batch in sampler for i in batch]
            seen += [ids[i] for i in indices]
            shown.update(indices)
        assert sorted(seen) == sorted(set(ids))
    # Over 6 epochs each of a subject's scans comes up equally often.
    for subject_scans in scans:
        assert {shown[i] for i in subject_scans} == {6 // len(subject_scans)}


def test_sampler_epoch_and_errors() -> None:
    sampler = _Scans(["a", "b", "c", "d"], 2, seed=0)
    assert sampler.sampler is sampler
    assert sampler.num_subjects == 4
    sampler.set_epoch(5)
    assert sampler.epoch == 5
    with pytest.raises(ValueError, match="epoch must be non-negative"):
        sampler.set_epoch(-1)
    with pytest.raises(ValueError, match=r"drop_last=True with 3 widgets, batch_size=2"):
        _Scans(["a", "b", "c"], 2, drop_last=True, num_replicas=2)


def test_subclass_must_define_epoch_batches() -> None:
    class _Bare(SubjectSampler[int]):
        def __init__(self) -> None:
            self.batch_size = 1
            super().__init__(False, 0, False, 1, 0)
            self.subjects, self._scans = ["a"], [[0]]
            self._check_and_order_scans("subjects")

    with pytest.raises(NotImplementedError):
        list(_Bare())
