"""Subject bookkeeping shared by the batch samplers.

Both samplers work on *subjects*, not dataset indices: a subject may own several dataset
indices (sessions, scans). Per epoch, every subject contributes exactly one of its scans; the
subjects are shuffled with a seed shared by all ranks, split disjointly across ranks, cut
into batches of distinct subjects, and padded so that every rank yields the same number of
batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

T = TypeVar("T")
SamplerT = TypeVar("SamplerT", bound="SubjectSampler[Any]")


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    return int(seed)


def check_batch_size(batch_size: int, minimum: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}.")
    if batch_size < minimum:
        raise ValueError(f"batch_size must be at least {minimum}, got {batch_size}.")
    return int(batch_size)


def resolve_replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Fill in ``num_replicas`` and ``rank`` from ``torch.distributed`` where initialised."""
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be at least 1, got {num_replicas}.")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}.")
    return int(num_replicas), int(rank)


def group_by_subject(subject_ids: Sequence[str]) -> tuple[list[str], list[list[int]]]:
    """Subjects in order of first appearance and the dataset indices of each."""
    if isinstance(subject_ids, str):
        raise TypeError("subject_ids must be a sequence of str (one per dataset index), got a str.")
    position: dict[str, int] = {}
    subjects: list[str] = []
    scans: list[list[int]] = []
    for index, subject in enumerate(subject_ids):
        if not isinstance(subject, str):
            raise TypeError(
                f"subject_ids[{index}] must be a str, got {type(subject).__name__} ({subject!r})."
            )
        if subject not in position:
            position[subject] = len(subjects)
            subjects.append(subject)
            scans.append([])
        scans[position[subject]].append(index)
    return subjects, scans


def scan_orders(scans: list[list[int]], seed: int, shuffle: bool) -> list[list[int]]:
    """A fixed order per subject in which its scans take turns, one per epoch."""
    if not shuffle:
        return [list(s) for s in scans]
    rng = np.random.default_rng([seed, 1])
    return [[s[i] for i in rng.permutation(len(s))] if len(s) > 1 else list(s) for s in scans]


def subject_order(num_subjects: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The epoch's subject permutation; identical on every rank."""
    if not shuffle:
        return np.arange(num_subjects)
    return np.random.default_rng([seed, epoch, 0]).permutation(num_subjects)


def num_batches(num_subjects: int, batch_size: int, num_replicas: int, drop_last: bool) -> int:
    """Batches per rank and epoch (the same on every rank)."""
    if drop_last:
        return (num_subjects // num_replicas) // batch_size
    return math.ceil(math.ceil(num_subjects / num_replicas) / batch_size)


def rank_batches(
    own: list[int],
    num_subjects: int,
    batch_size: int,
    num_replicas: int,
    drop_last: bool,
    min_size: int,
) -> list[list[int]]:
    """Cut one rank's subjects (or scans, one per subject) into batches.

    With ``drop_last`` every rank yields ``(num_subjects // num_replicas) // batch_size``
    full batches and the remaining subjects of the rank are left out this epoch.

    Otherwise every rank yields ``ceil(ceil(num_subjects / num_replicas) / batch_size)``
    batches. All batches but the last are full. When a rank has more than one batch, its last
    batch is filled to ``max(r, min_size)`` elements, ``r`` being the size of the last batch
    on the rank with the most subjects, by repeating subjects of the rank's *earlier* batches
    (so the ranks' batch sizes agree and no batch holds a subject twice). With a single
    batch, the batch is the rank's subjects as they are.
    """
    count = num_batches(num_subjects, batch_size, num_replicas, drop_last)
    if drop_last:
        return [own[i * batch_size : (i + 1) * batch_size] for i in range(count)]
    if count == 1:
        return [list(own)]
    longest = math.ceil(num_subjects / num_replicas)
    last_size = min(batch_size, max(longest - (count - 1) * batch_size, min_size))
    batches = [own[i * batch_size : (i + 1) * batch_size] for i in range(count)]
    last = batches[-1]
    taken = set(last)
    for element in own:
        if len(last) >= last_size:
            break
        if element not in taken:
            last.append(element)
            taken.add(element)
    return batches


class SubjectSampler(Sampler[list[T]]):
    """Ranks, epochs and per-subject scan turns shared by the batch samplers.

    A subclass fills ``subjects`` and ``_scans`` (the dataset indices of each subject) after
    calling ``__init__``, runs its own checks, calls :meth:`_check_and_order_scans`, and
    implements :meth:`_epoch_batches` (usually on top of :meth:`_scan_batches`).

    Args:
        shuffle: Shuffle subjects each epoch (and the order in which a subject's scans
            take turns).
        seed: Seed of every random choice; identical on all ranks.
        drop_last: Drop incomplete batches.
        num_replicas: Number of ranks (default: ``torch.distributed`` world size, else 1).
        rank: This rank (default: ``torch.distributed`` rank, else 0).
    """

    batch_size: int
    subjects: list[str]
    _scans: list[list[int]]
    _orders: list[list[int]]

    def __init__(
        self,
        shuffle: bool,
        seed: int,
        drop_last: bool,
        num_replicas: int | None,
        rank: int | None,
    ) -> None:
        self.seed = check_seed(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.num_replicas, self.rank = resolve_replicas(num_replicas, rank)
        self.epoch = 0

    def _check_and_order_scans(self, counted: str) -> None:
        """Require a batch on every rank, then fix the order in which scans take turns.

        Args:
            counted: What ``subjects`` holds, as the error message names it.

        Raises:
            ValueError: ``drop_last=True`` leaves no full batch per rank.
        """
        if len(self) == 0:
            raise ValueError(
                f"drop_last=True with {len(self.subjects)} {counted}, "
                f"batch_size={self.batch_size} and num_replicas={self.num_replicas} leaves no "
                "full batch per rank: lower batch_size or set drop_last=False."
            )
        self._orders = scan_orders(self._scans, self.seed, self.shuffle)

    @property
    def num_subjects(self) -> int:
        """Number of subjects the batches are drawn from."""
        return len(self.subjects)

    @property
    def sampler(self: SamplerT) -> SamplerT:
        """This sampler itself.

        PyTorch Lightning calls ``set_epoch`` on ``dataloader.batch_sampler.sampler`` at the
        start of every epoch; exposing the sampler here makes it advance the epoch.
        """
        return self

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; subject order, scan choice and every other draw depend on it."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}.")
        self.epoch = int(epoch)

    def _scan_batches(self, min_size: int) -> list[list[int]]:
        """This rank's batches of the epoch: one scan (dataset index) per subject.

        Args:
            min_size: Least size of a padded last batch (see :func:`rank_batches`).

        Returns:
            The batches of dataset indices, in order.
        """
        order = subject_order(self.num_subjects, self.seed, self.epoch, self.shuffle)
        own = order[self.rank :: self.num_replicas]
        scans = [self._orders[s][self.epoch % len(self._orders[s])] for s in own]
        return rank_batches(
            scans, self.num_subjects, self.batch_size, self.num_replicas, self.drop_last, min_size
        )

    def _epoch_batches(self) -> list[list[T]]:
        """This rank's batches of the current epoch; every sampler defines its own."""
        raise NotImplementedError(
            f"{type(self).__name__} must define _epoch_batches (see SubjectSampler)."
        )

    def __iter__(self) -> Iterator[list[T]]:
        yield from self._epoch_batches()

    def __len__(self) -> int:
        return num_batches(self.num_subjects, self.batch_size, self.num_replicas, self.drop_last)
