"""Before a run starts: estimate its wall time from timed steps, refuse one that cannot fit.

The estimate times, on the run's device and thread count, one training step of the
backbone on a pretraining batch and one frozen forward pass of a downstream subject, then
scales them by the run's counts (volumes pretrained, subjects probed) and by overhead
factors measured on the 2-core CPU development machine (views, heads and Lightning around
a pretraining step; probe fitting and voxel-wise scoring around a forward pass). It is an
estimate, within about 30% there; it is printed at the start and written into the report,
and a run whose estimate exceeds its budget by more than that is refused.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from lightly_topo.benchmark.presets import Preset
from lightly_topo.errors import LightlyTopoError

#: Wall time of a pretraining run per second of bare backbone training on its volumes
#: (measured on the 2-core development machine: 8.3 ms per volume against 4.3 ms bare).
PRETRAIN_OVERHEAD = 2.0

#: Wall time of probing, per second of a bare forward pass of one subject: a subject of
#: the dense test set (8 voxel-wise predictions), of the dense fitting set (voxel draw), and
#: one read by the subject-label probes only.
DENSE_TEST_OVERHEAD = 7.0
DENSE_TRAIN_OVERHEAD = 1.5
POOLED_OVERHEAD = 1.2

#: Seconds per probe readout for fitting the probes, and of the run's start (imports,
#: estimate); seconds to generate one synthetic subject of 32^3 (scales with the volume).
PROBE_FIT_S = 1.0
START_S = 20.0
SUBJECT_32_S = 0.04


class BudgetError(LightlyTopoError, ValueError):
    """The run's estimated wall time exceeds its time budget."""


def _timed(step: object, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def estimate_seconds(preset: Preset, device: str = "cpu", probes: Any = None) -> float:
    """Estimated wall time of a full run of ``preset`` (no record reused); with a real
    :class:`~lightly_topo.benchmark.datasets.ProbeSet` ``probes``, of a run on its folds."""
    from lightly_topo.benchmark.runner import threads
    from lightly_topo.models import build_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        backbone = build_backbone(preset.backbone, in_channels=1, **dict(preset.backbone_kwargs))
    backbone.to(device)
    m = len(preset.modalities) if probes is None else len(probes.modality_names)
    shape = (
        (preset.synthetic_size,) * 3
        if probes is None
        else tuple(int(s) for s in np.median([img.shape[1:] for img in probes.images], axis=0))
    )
    crop = torch.randn(preset.pretrain_batch_size * m, 1, *(preset.crop_size,) * 3, device=device)
    full = torch.randn(m, 1, *shape, device=device)

    def train_step() -> None:
        backbone.zero_grad()
        sum(level.mean() for level in backbone.forward_features(crop)).backward()  # type: ignore[union-attr]

    def forward() -> None:
        with torch.no_grad():
            backbone.forward_features(full)

    train_step()
    per_train_volume = _timed(train_step) / crop.shape[0]
    with threads(preset.probe_threads):
        forward()
        per_subject = _timed(forward)
    volumes = sum(
        (preset.supervised_volumes or preset.pretrain_volumes)
        if method == "supervised"
        else preset.pretrain_volumes
        for method in preset.methods
        if method != "scratch"
    )
    folds = 1 if probes is None else len(probes.splits())
    n_train = preset.probe_train_subjects if probes is None else len(probes.splits()[0][0])
    n_test = preset.probe_test_subjects if probes is None else len(probes.splits()[0][1])
    pretrain = folds * len(preset.seeds) * volumes * per_train_volume
    encoders = folds * (len(preset.methods) + 1) * len(preset.seeds)
    dense_train = min(preset.probe_dense_train_subjects, n_train)
    dense_test = min(preset.probe_dense_test_subjects, n_test)
    pooled = n_train + n_test - dense_train - dense_test
    per_encoder = PROBE_FIT_S + per_subject * (
        dense_test * DENSE_TEST_OVERHEAD
        + dense_train * DENSE_TRAIN_OVERHEAD
        + pooled * POOLED_OVERHEAD
    )
    subjects = preset.probe_train_subjects + preset.probe_test_subjects + preset.pretrain_subjects
    generate = subjects * SUBJECT_32_S * (preset.synthetic_size / 32) ** 3 if probes is None else 0
    return START_S + generate + PRETRAIN_OVERHEAD * pretrain + encoders * per_encoder


#: A run is refused when its estimate exceeds its budget by more than the estimate's error.
TOLERANCE = 1.3


def check_budget(preset: Preset, device: str = "cpu", probes: Any = None) -> float:
    """The estimate; raises :class:`BudgetError` if it exceeds ``preset.time_budget_s`` by
    more than the estimate's error (:data:`TOLERANCE`), logs a warning if it exceeds it. On a
    real set (``probes``) the budget is per fold (each fold pretrains every method)."""
    import logging

    estimate = estimate_seconds(preset, device, probes)
    budget = preset.time_budget_s
    if budget is not None and probes is not None:
        budget *= len(probes.splits())
    if budget is not None and budget < estimate <= TOLERANCE * budget:
        logging.getLogger("lightly_topo.benchmark").warning(
            "preset %r: estimated %.0f s, above its budget of %.0f s but within the estimate's "
            "error; starting",
            preset.name,
            estimate,
            budget,
        )
    if budget is not None and estimate > TOLERANCE * budget:
        raise BudgetError(
            f"preset {preset.name!r}: estimated {estimate:.0f} s on this machine, over its "
            f"budget of {budget:.0f} s; lower pretrain_volumes, the seeds or the probe "
            "subjects (e.g. --set pretrain_volumes=...), or raise the budget with "
            "--set time_budget_s=SECONDS"
        )
    return estimate
