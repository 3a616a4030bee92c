"""Batch samplers that reason about subjects rather than dataset indices.

* :class:`SubjectBatchSampler`: no two scans of one subject in a batch (instance-level SSL).
* :class:`CrossSubjectBatchSampler`: distinct subjects per batch, each with a balanced
  modality pair, for the TACO inter-instance loss; use with :class:`ModalityPairDataset`.

Pass them to ``DataLoader(dataset, batch_sampler=...)``. They split subjects across ranks
themselves, so under PyTorch Lightning DDP use ``Trainer(use_distributed_sampler=False)``;
Lightning then calls their ``set_epoch`` every epoch (through ``batch_sampler.sampler``).
Without Lightning, call ``set_epoch(epoch)`` before each epoch.
"""

from __future__ import annotations

from lightly_topo.samplers.cross_subject_batch_sampler import (
    CrossSubjectBatchSampler,
    PairedIndex,
)
from lightly_topo.samplers.modality_pair_dataset import ModalityPairDataset
from lightly_topo.samplers.subject_batch_sampler import SubjectBatchSampler

__all__ = [
    "CrossSubjectBatchSampler",
    "ModalityPairDataset",
    "PairedIndex",
    "SubjectBatchSampler",
]
