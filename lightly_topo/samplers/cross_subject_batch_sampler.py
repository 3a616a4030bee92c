"""Batches of distinct subjects with a balanced modality pair per element (TACO)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from lightly_topo.samplers._partition import SubjectSampler, check_batch_size, group_by_subject

#: One batch element: a dataset index and the modality pair ``(mod_a, mod_b)`` drawn for it.
PairedIndex = tuple[int, tuple[str, str]]


class CrossSubjectBatchSampler(SubjectSampler[PairedIndex]):
    """Batch sampler for the TACO inter-instance loss: distinct subjects, balanced pairs.

    The inter-instance term of TACO (*Beyond Instance-Level Self-Supervision in 3D
    Multi-Modal Medical Imaging*, ICML 2026) compares two modalities ``(a, b)`` of one
    subject against those of *other* subjects, so every batch must hold several distinct
    subjects. This sampler yields batches of ``(index, (mod_a, mod_b))`` elements:

    * every batch holds distinct subjects, at least ``min_subjects`` of them (the last batch
      of a rank is padded with subjects of the rank's earlier batches where needed);
    * per epoch every eligible subject contributes one scan (scans take turns across epochs);
    * each element carries a pair of modalities available to its scan, ``mod_a`` before
      ``mod_b`` in ``modality_names`` order. Pairs are balanced over the rank's epoch:
      elements with the fewest available pairs choose first, each taking the least-used of
      its pairs so far (ties broken by the seeded generator).

    A scan is *eligible* when at least two of its modalities are available; subjects without
    an eligible scan are left out (listed in :attr:`excluded_subjects`).

    Distribution over ranks, padding, ``drop_last`` and :meth:`__len__` follow
    :class:`~lightly_topo.samplers.SubjectBatchSampler`, counted over eligible subjects;
    additionally a rank's last batch is padded to ``min_subjects`` elements.

    Use with a ``torch.utils.data.DataLoader`` through ``batch_sampler=``; the dataset then
    receives ``(index, (mod_a, mod_b))`` keys, which
    :class:`~lightly_topo.samplers.ModalityPairDataset` accepts (it adds the pair to each
    item under ``"modality_pair"``).

    Args:
        subject_ids: The subject of every dataset index (length ``N``).
        availability: Bool array or tensor ``(N, M)``: which modalities each scan has.
        modality_names: The dataset's modality vocabulary (length ``M``).
        batch_size: Elements (distinct subjects) per batch, at least 2.
        min_subjects: Least number of distinct subjects in every batch, 2 to ``batch_size``.
        shuffle: Shuffle subjects each epoch.
        seed: Seed of every random choice; identical on all ranks.
        drop_last: Drop incomplete batches.
        num_replicas: Number of ranks (default: ``torch.distributed`` world size, else 1).
        rank: This rank (default: ``torch.distributed`` rank, else 0).

    Raises:
        ValueError: ``batch_size < 2``, ``min_subjects`` outside ``[2, batch_size]``, length
            or shape mismatches, duplicate modality names, no scan with two available
            modalities, fewer eligible subjects than ``min_subjects`` per rank, a bad
            ``seed``/``rank``, or ``drop_last=True`` leaving no full batch.

    Example:
        >>> import torch
        >>> mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 1, 1], [1, 0, 1]], dtype=torch.bool)
        >>> sampler = CrossSubjectBatchSampler(
        ...     ["s1", "s2", "s3", "s4"], mask, ("t1", "t2", "flair"), batch_size=2, seed=0
        ... )
        >>> batch = next(iter(sampler))
        >>> len(batch), type(batch[0][0]).__name__, len(batch[0][1])
        (2, 'int', 2)
    """

    def __init__(
        self,
        subject_ids: Sequence[str],
        availability: torch.Tensor | np.ndarray | Sequence[Sequence[bool]],
        modality_names: Sequence[str],
        batch_size: int,
        min_subjects: int = 2,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        self.batch_size = check_batch_size(batch_size, 2)
        if not 2 <= min_subjects <= self.batch_size:
            raise ValueError(
                f"min_subjects must be in [2, batch_size={self.batch_size}], got {min_subjects}."
            )
        self.min_subjects = int(min_subjects)
        super().__init__(shuffle, seed, drop_last, num_replicas, rank)

        if isinstance(modality_names, str):
            raise TypeError("modality_names must be a sequence of str, got a single str.")
        self.modality_names = tuple(modality_names)
        if len(set(self.modality_names)) != len(self.modality_names):
            raise ValueError(f"modality_names has duplicates: {self.modality_names}.")
        mask = _as_bool_array(availability)
        n = len(subject_ids)
        if mask.ndim != 2 or mask.shape != (n, len(self.modality_names)):
            raise ValueError(
                f"availability must have shape (N, M) = ({n}, {len(self.modality_names)}) "
                f"(one row per subject_ids entry, one column per modality name), got "
                f"{tuple(mask.shape)}."
            )
        self.availability = mask

        subjects, scans = group_by_subject(subject_ids)
        eligible = mask.sum(axis=1) >= 2
        kept = [(s, [i for i in idx if eligible[i]]) for s, idx in zip(subjects, scans)]
        self.excluded_subjects = tuple(s for s, idx in kept if not idx)
        self.subjects = [s for s, idx in kept if idx]
        self._scans = [idx for _, idx in kept if idx]
        if not self.subjects:
            raise ValueError(
                "no scan has two available modalities (availability rows all have fewer than "
                "two True entries): the cross-subject sampler needs modality pairs."
            )
        per_rank = len(self.subjects) // self.num_replicas
        if per_rank < self.min_subjects:
            raise ValueError(
                f"{len(self.subjects)} eligible subjects over num_replicas={self.num_replicas} "
                f"give {per_rank} per rank, fewer than min_subjects={self.min_subjects}: lower "
                "min_subjects or use fewer ranks."
            )
        self._check_and_order_scans("eligible subjects")
        self.pairs: tuple[tuple[str, str], ...] = tuple(
            itertools.combinations(self.modality_names, 2)
        )
        pair_cols = np.array(list(itertools.combinations(range(len(self.modality_names)), 2)))
        # (N, P): pair p is available to scan i.
        self._pair_available = mask[:, pair_cols[:, 0]] & mask[:, pair_cols[:, 1]]

    def _epoch_batches(self) -> list[list[PairedIndex]]:
        batches = self._scan_batches(self.min_subjects)
        flat = [index for batch in batches for index in batch]
        pairs = self._assign_pairs(flat)
        out: list[list[PairedIndex]] = []
        position = 0
        for batch in batches:
            out.append([(index, self.pairs[p]) for index, p in zip(batch, pairs[position:])])
            position += len(batch)
        return out

    def _assign_pairs(self, indices: list[int]) -> list[int]:
        """Least-used-first pair per element, most constrained elements first."""
        rng = np.random.default_rng([self.seed, self.epoch, 2, self.rank])
        available = self._pair_available[indices]
        tie = rng.random(len(indices))
        # Sort by number of available pairs, then randomly among equals.
        visit = np.lexsort((tie, available.sum(axis=1)))
        counts = np.zeros(len(self.pairs), dtype=np.int64)
        chosen = np.empty(len(indices), dtype=np.int64)
        for element in visit:
            options = np.flatnonzero(available[element])
            least = options[counts[options] == counts[options].min()]
            pick = int(least[rng.integers(len(least))]) if len(least) > 1 else int(least[0])
            chosen[element] = pick
            counts[pick] += 1
        return chosen.tolist()


def _as_bool_array(
    availability: torch.Tensor | np.ndarray | Sequence[Sequence[bool]],
) -> np.ndarray:
    if isinstance(availability, torch.Tensor):
        array = availability.detach().cpu().numpy()
    else:
        array = np.asarray(availability)
    if array.dtype != np.bool_:
        if array.size and not np.isin(array, (0, 1)).all():
            raise ValueError("availability must be boolean (or 0/1), got other values.")
        array = array.astype(bool)
    return array
