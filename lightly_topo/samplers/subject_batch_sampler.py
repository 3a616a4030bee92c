"""Batches of distinct subjects for instance-level self-supervised learning."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

from lightly_topo.samplers._partition import (
    check_batch_size,
    check_seed,
    group_by_subject,
    num_batches,
    rank_batches,
    resolve_replicas,
    scan_orders,
    subject_order,
)


class SubjectBatchSampler(Sampler[list[int]]):
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
        self.seed = check_seed(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.num_replicas, self.rank = resolve_replicas(num_replicas, rank)
        self.subjects, self._scans = group_by_subject(subject_ids)
        self.num_indices = len(subject_ids)
        self.epoch = 0
        if not self.subjects:
            raise ValueError("subject_ids is empty: the sampler needs at least one subject.")
        if len(self.subjects) < self.num_replicas:
            raise ValueError(
                f"subject_ids holds {len(self.subjects)} distinct subjects, fewer than "
                f"num_replicas={self.num_replicas}: every rank needs at least one subject."
            )
        if len(self) == 0:
            raise ValueError(
                f"drop_last=True with {len(self.subjects)} subjects, batch_size={self.batch_size} "
                f"and num_replicas={self.num_replicas} leaves no full batch per rank: lower "
                "batch_size or set drop_last=False."
            )
        self._orders = scan_orders(self._scans, self.seed, self.shuffle)

    @property
    def num_subjects(self) -> int:
        """Number of distinct subjects."""
        return len(self.subjects)

    @property
    def sampler(self) -> SubjectBatchSampler:
        """This sampler itself.

        PyTorch Lightning calls ``set_epoch`` on ``dataloader.batch_sampler.sampler`` at the
        start of every epoch; exposing the sampler here makes it advance the epoch.
        """
        return self

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; the subject order and scan choice depend on it (deterministically)."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}.")
        self.epoch = int(epoch)

    def _epoch_batches(self) -> list[list[int]]:
        order = subject_order(self.num_subjects, self.seed, self.epoch, self.shuffle)
        own = order[self.rank :: self.num_replicas]
        scans = [self._orders[s][self.epoch % len(self._orders[s])] for s in own]
        return rank_batches(
            scans, self.num_subjects, self.batch_size, self.num_replicas, self.drop_last, 1
        )

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._epoch_batches()

    def __len__(self) -> int:
        return num_batches(self.num_subjects, self.batch_size, self.num_replicas, self.drop_last)
