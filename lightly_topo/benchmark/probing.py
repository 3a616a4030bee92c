"""The primary readout: frozen-encoder probes on the downstream subjects.

For one encoder and seed, every downstream subject is encoded once
(:func:`~lightly_topo.eval.features.encode`). On the probe-fitting subjects:

* a **dense linear probe** per feature layout (:func:`~lightly_topo.eval.probes.fit_dense_probe`)
  on voxels drawn per subject of the first ``probe_dense_train_subjects`` (``probe_class_voxels`` of every class it has, plus
  ``probe_random_voxels`` uniformly; the draw is seeded by the seed, so every method sees
  the same voxels): ``per_modality`` (the modalities' features side by side) and ``fused``
  (their mean);
* a **linear** (logistic regression) and a **kNN** probe on the pooled features for every
  subject label.

On the test subjects (the dense probes on the first ``probe_dense_test_subjects`` of them,
whose voxel-wise predictions cost most): each probe's prediction of every voxel, scored per class with
:func:`~lightly_topo.eval.metrics.presence_dice` (Dice where the subject has the class,
false-positive volume where it has not); the fused probe also on every modality subset,
counting only subjects that have every modality of the subset; and each subject label's
predictions. The record keeps per-subject values, so the report can resample subjects.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightly_topo.benchmark.datasets import ProbeSet
from lightly_topo.benchmark.presets import Preset


def draw_voxels(target: Tensor, per_class: int, uniform: int, generator: torch.Generator) -> Tensor:
    """Voxel indices ``(N, 3)`` of a subject's probe-fitting sample: up to ``per_class`` of
    every class present (all of a smaller class), plus ``uniform`` drawn over the volume."""
    flat = target.flatten()
    picked = []
    for cls in torch.unique(flat).tolist():
        where = (flat == cls).nonzero().flatten()
        order = torch.randperm(len(where), generator=generator)[:per_class]
        picked.append(where[order])
    picked.append(torch.randint(flat.numel(), (uniform,), generator=generator))
    index = torch.cat(picked)
    shape = target.shape
    return torch.stack(
        [index // (shape[1] * shape[2]), (index // shape[2]) % shape[1], index % shape[2]], dim=1
    )


def _plain(values: Tensor) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values.tolist()]


def _summary(dice: Tensor, probes: ProbeSet) -> tuple[float | None, float | None]:
    headline = dice[list(probes.headline_classes)] if probes.headline_classes else dice[1:]
    finite = headline[~torch.isnan(headline)]
    mean = float(finite.mean()) if finite.numel() else None
    lesion = None if probes.lesion_class is None else _plain(dice[[probes.lesion_class]])[0]
    return mean, lesion


def _predict(grid: Tensor, image: Tensor, probe: Any, size: tuple[int, int, int]) -> Tensor:
    from lightly_topo.eval.features import voxel_logits

    # max(0) rather than argmax(0): the same first-maximum index, several times faster on
    # the CPU for a reduction over the leading dimension.
    return voxel_logits(grid, probe.weight, probe.bias, size, image).max(0).indices


def run_probes(encoder: Any, probes: ProbeSet, seed: int, preset: Preset) -> dict[str, Any]:
    """Fit and score every probe for one encoder; returns the record's ``result``."""
    from lightly_topo.eval.features import encode, fuse, sample_voxels
    from lightly_topo.eval.metrics import presence_dice
    from lightly_topo.eval.missing_modality import modality_subsets, subset_name
    from lightly_topo.eval.probes import fit_dense_probe, fit_subject_probes, predict

    start = time.perf_counter()
    k = len(probes.class_names)
    generator = torch.Generator().manual_seed(seed)
    per_modality, fused, targets = [], [], []
    class_voxels = torch.zeros(k, dtype=torch.float64)
    pooled_train = []
    for n, i in enumerate(probes.train):
        fits_dense = n < preset.probe_dense_train_subjects
        encoded = encode(encoder, probes.images[i][None], probes.masks[i : i + 1], fits_dense)
        pooled_train.append(encoded.pooled)
        if not fits_dense:
            continue
        target = probes.targets[i]
        class_voxels += torch.bincount(target.flatten(), minlength=k).double()
        voxels = draw_voxels(
            target, preset.probe_class_voxels, preset.probe_random_voxels, generator
        )
        mask = probes.masks[i]
        per_modality.append(sample_voxels(encoded.grid, voxels, encoded.size, encoded.image))
        fused.append(
            sample_voxels(fuse(encoded.grid, mask), voxels, encoded.size, fuse(encoded.image, mask))
        )
        targets.append(target[voxels[:, 0], voxels[:, 1], voxels[:, 2]])
    y = torch.cat(targets).numpy()
    dense = {
        "per_modality": fit_dense_probe(
            torch.cat(per_modality).numpy(), y, k, class_voxels.numpy()
        ),
        "fused": fit_dense_probe(torch.cat(fused).numpy(), y, k, class_voxels.numpy()),
    }
    del per_modality, fused
    x_train = torch.stack(pooled_train).numpy()
    subject_probes = {}
    for name, values in probes.labels.items():
        keep = [n for n, i in enumerate(probes.train) if values[i] is not None]
        classes = sorted({str(values[probes.train[n]]) for n in keep})
        if len(classes) < 2:
            continue
        subject_probes[name] = (
            classes,
            fit_subject_probes(
                x_train[keep], np.array([str(values[probes.train[n]]) for n in keep])
            ),
        )

    subsets = modality_subsets(probes.modality_names)
    scores: dict[str, dict[str, list[Any]]] = {
        layout: {"dice": [], "false_positive_ml": []} for layout in dense
    }
    subset_scores: dict[str, dict[str, list[Any]]] = {
        subset_name(s): {"headline": [], "lesion": []} for s in subsets
    }
    pooled_test, dense_test = [], []
    for n, j in enumerate(probes.test):
        scored_dense = n < preset.probe_dense_test_subjects
        encoded = encode(encoder, probes.images[j][None], probes.masks[j : j + 1], scored_dense)
        target = probes.targets[j]
        mask = probes.masks[j]
        pooled_test.append(encoded.pooled)
        if not scored_dense:
            continue
        dense_test.append(j)
        full: Tensor | None = None
        for layout, probe in dense.items():
            if layout == "per_modality":
                grid, image = encoded.grid, encoded.image
            else:
                grid, image = fuse(encoded.grid, mask), fuse(encoded.image, mask)
            dice, false_positive = presence_dice(
                _predict(grid, image, probe, encoded.size), target, k, probes.voxel_ml
            )
            scores[layout]["dice"].append(_plain(dice))
            scores[layout]["false_positive_ml"].append(_plain(false_positive))
            full = dice
        for subset in subsets:
            kept = torch.tensor([m in subset for m in probes.modality_names]) & mask
            row = subset_scores[subset_name(subset)]
            if int(kept.sum()) < len(subset):
                row["headline"].append(None)
                row["lesion"].append(None)
                continue
            if bool(kept.all()) and full is not None:
                dice = full  # the fused probe on every modality, scored above
            else:
                grid, image = fuse(encoded.grid, kept), fuse(encoded.image, kept)
                dice, _ = presence_dice(
                    _predict(grid, image, dense["fused"], encoded.size),
                    target,
                    k,
                    probes.voxel_ml,
                )
            headline, lesion = _summary(dice, probes)
            row["headline"].append(headline)
            row["lesion"].append(lesion)
    x_test = torch.stack(pooled_test).numpy()
    labels: dict[str, Any] = {}
    for name, (classes, fitted) in subject_probes.items():
        values = probes.labels[name]
        labels[name] = {
            "classes": classes,
            "target": [None if values[j] is None else str(values[j]) for j in probes.test],
            **{kind: [str(v) for v in predict(est, x_test)] for kind, est in fitted.items()},
        }
    return {
        "test_subjects": [probes.subject_ids[j] for j in probes.test],
        "dense_test_subjects": [probes.subject_ids[j] for j in dense_test],
        "class_names": list(probes.class_names),
        "headline_classes": list(probes.headline_classes),
        "headline_name": probes.headline_name,
        "lesion_class": probes.lesion_class,
        "dense": scores,
        "subsets": subset_scores,
        "subject_labels": labels,
        "train_voxels": len(y),
        "wall_s": time.perf_counter() - start,
    }
