"""Batches of distinct subjects for instance-level self-supervised learning."""

from __future__ import annotations

from collections.abc import Sequence

from lightly_topo.samplers._partition import SubjectSampler, check_batch_size, group_by_subject


class SubjectBatchSampler(SubjectSampler[int]):
    """Batch sampler that never puts two scans of one subject into one batch.

    Instance-level methods (SimCLR, BYOL) treat every batch element as its own instance, so
    two scans (sessions) of one subject in a batch would become a false negative pair. This
    sampler works on subjects: per epoch, every subject contributes exactly one of its scans
    (its scans take turns across epochs in a fixed, seeded order, so over ``k`` consecutive
    epochs a subject with ``k`` scans shows each once), and every batch holds distinct
    subjects.

    Distributed training: the subjects (not the indices) are shuffled with a permutation
    that depends only on ``seed`` and the epoch, and rank ``r`` takes every
    ``num_replicas``-th subject starting at ``r``, so the ranks' subjects are disjoint and
    together cover every subject once per epoch. Every rank yields the same number of
    batches, :meth:`__len__`:

    * ``drop_last=False``: ``ceil(ceil(S / num_replicas) / batch_size)`` batches for ``S``
      subjects. All batches but the last are full. A rank with one subject fewer than the
      others fills its last batch (or, where needed, an extra last batch) by repeating
      subjects from its earlier batches, never within a batch; with a single batch per rank,
      that batch may hold one element fewer than on the other ranks.
    * ``drop_last=True``: ``(S // num_replicas) // batch_size`` full batches; the subjects
      left over on a rank are not seen this epoch (a different set each epoch).

    Args:
        subject_ids: The subject of every dataset index (length ``N``); indices sharing a
            subject are scans of one subject.
        batch_size: Number of subjects per batch (at least 1).
        shuffle: Shuffle subjects each epoch (and the order in which a subject's scans
            take turns). Without shuffling, subjects come in order of first appearance.
        seed: Seed of every random choice; identical on all ranks.
        drop_last: Drop incomplete batches (see above).
        num_replicas: Number of ranks; defaults to the ``torch.distributed`` world size when
            initialised, else 1.
        rank: This rank; defaults to the ``torch.distributed`` rank when initialised, else 0.

    Raises:
        ValueError: Empty ``subject_ids``, ``batch_size < 1``, a bad ``seed``/``rank``, fewer
            subjects than ranks, or ``drop_last=True`` with too few subjects for a single
            full batch per rank.
        TypeError: A subject id that is not a str.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> sampler = SubjectBatchSampler(["a", "a", "b", "c"], batch_size=2, seed=0)
        >>> len(sampler)
        2
        >>> sorted(len(batch) for batch in sampler)
        [1, 2]
        >>> # loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_subjects)
        >>> # for epoch in range(epochs): sampler.set_epoch(epoch); ...
    """

    def __init__(
        self,
        subject_ids: Sequence[str],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        self.batch_size = check_batch_size(batch_size, 1)
        super().__init__(shuffle, seed, drop_last, num_replicas, rank)
        self.subjects, self._scans = group_by_subject(subject_ids)
        self.num_indices = len(subject_ids)
        if not self.subjects:
            raise ValueError("subject_ids is empty: the sampler needs at least one subject.")
        if len(self.subjects) < self.num_replicas:
            raise ValueError(
                f"subject_ids holds {len(self.subjects)} distinct subjects, fewer than "
                f"num_replicas={self.num_replicas}: every rank needs at least one subject."
            )
        self._check_and_order_scans("subjects")

    def _epoch_batches(self) -> list[list[int]]:
        return self._scan_batches(1)
