"""The controls: the negative control is every method's initialisation, the positive control
sees only pretraining subjects, and the instrument check follows the paired intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from lightly_topo.benchmark import get_preset, run_benchmark
from lightly_topo.benchmark.datasets import (
    labelled_volumes,
    pretraining_brains,
    synthetic_probe_set,
)
from lightly_topo.benchmark.pretraining import pretrain_layer, scratch_encoder


@pytest.mark.parametrize(
    "method", ["simclr", "byol", "mae", "xmodal-simclr", "taco", "simclr+topo"]
)
def test_every_method_starts_from_the_scratch_weights(method: str, tmp_path: Path) -> None:
    from lightly_topo.methods import build_config
    from lightly_topo.methods.train import build

    preset = get_preset("smoke")
    brains = pretraining_brains(preset)
    from lightly_topo.benchmark.datasets import pretraining_table

    table = pretraining_table(brains)
    layer = pretrain_layer(preset, method, 3, tmp_path, table.modality_names, "cpu")
    module, *_ = build(build_config(layer), table=table)
    scratch = scratch_encoder(preset, table.modality_names, 3).backbone.state_dict()
    initial = module.encoder.state_dict()
    assert initial.keys() == scratch.keys()
    for key in scratch:
        assert torch.equal(initial[key], scratch[key]), (method, key)


def test_positive_control_sees_only_pretraining_subjects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightly_topo.methods.supervised as supervised

    preset = get_preset("smoke", methods=("scratch", "supervised"))
    seen: list[torch.Tensor] = []
    train = supervised.train_supervised

    def spy(encoder: Any, images: torch.Tensor, labels: torch.Tensor, **kwargs: Any) -> Any:
        seen.append(images)
        return train(encoder, images, labels, **kwargs)

    monkeypatch.setattr(supervised, "train_supervised", spy)
    run_benchmark(preset, tmp_path, command="pytest controls")
    expected, _ = labelled_volumes(pretraining_brains(preset))
    downstream = synthetic_probe_set(preset)
    assert len(seen) == len(preset.seeds)
    for images in seen:
        assert torch.equal(images, expected)
        for subject in downstream.images:
            assert not any(torch.equal(subject, image) for image in images)
    pretrain_ids = {
        pretraining_brains(preset).subject_id(i) for i in range(preset.pretrain_subjects)
    }
    assert not pretrain_ids & set(downstream.subject_ids)


def _fake_results(scratch: float, supervised: float) -> dict[str, dict[int, dict[str, Any]]]:
    """Probe results where each subject's Dice is about a fixed value (two seeds, 24 subjects)."""
    names = ["background", "a", "b", "lesion"]

    def result(value: float, seed: int) -> dict[str, Any]:
        rows = []
        for j in range(24):
            v = value + 0.01 * ((j + seed) % 3) * (2 if value > 0.5 else 1)
            rows.append([0.9, v, v, v if j % 2 == 0 else None])
        fp = [[None, None, None, None if j % 2 == 0 else 0.1] for j in range(24)]
        truth = [str(j % 2) for j in range(24)]
        wrong = set() if value > 0.5 else {j for j in range(24) if (j + seed) % 3}
        guess = [("1" if t == "0" else "0") if j in wrong else t for j, t in enumerate(truth)]
        return {
            "class_names": names,
            "headline_classes": [1, 2],
            "lesion_class": 3,
            "dense": {
                "per_modality": {"dice": rows, "false_positive_ml": fp},
                "fused": {"dice": rows, "false_positive_ml": fp},
            },
            "subsets": {"t1": {"headline": [r[1] for r in rows], "lesion": [r[3] for r in rows]}},
            "subject_labels": {
                "lesion": {
                    "classes": ["0", "1"],
                    "target": truth,
                    "linear": guess,
                    "knn": truth,
                }
            },
        }

    return {
        "scratch": {s: result(scratch, s) for s in (0, 1)},
        "supervised": {s: result(supervised, s) for s in (0, 1)},
    }


@pytest.mark.parametrize(("supervised", "passed"), [(0.8, True), (0.2, False)])
def test_instrument_check_follows_the_paired_intervals(supervised: float, passed: bool) -> None:
    from lightly_topo.benchmark.scores import ScoreTable, instrument_check

    table = ScoreTable(_fake_results(0.3, supervised), ["scratch", "supervised"], draws=200)
    check = instrument_check(table)
    assert check["passed"] is passed
    assert [r["column"] for r in check["columns"]] == ["deep_grey", "subsets", "labels"]
    if passed:
        assert all(r["low"] > 0 for r in check["columns"])


def test_instrument_check_needs_both_controls() -> None:
    from lightly_topo.benchmark.scores import ScoreTable, instrument_check

    results = _fake_results(0.3, 0.8)
    del results["supervised"]
    check = instrument_check(ScoreTable(results, ["scratch"], draws=50))
    assert not check["passed"] and "controls missing" in check["reason"]
