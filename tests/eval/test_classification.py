from __future__ import annotations

import json
import math

import pytest
import torch

from lightly_topo.data.synthetic import SyntheticBrains
from lightly_topo.eval.classification import (
    ClassificationConfig,
    class_labels,
    classification_summary,
    fit_classification,
    run_classification,
)
from lightly_topo.eval.tasks import (
    EmptyClassError,
    IncompatibleEncoderError,
    MissingLabelError,
    TaskError,
    adapt_encoder,
    scratch_encoder_like,
)
from lightly_topo.models import MultiModalEncoder, build_backbone

MODALITIES = ("t1", "flair")


def tiny_encoder(seed: int = 0) -> MultiModalEncoder:
    torch.manual_seed(seed)
    backbone = build_backbone("resenc", features=(8, 16), strides=(2, 2), blocks_per_stage=1)
    return MultiModalEncoder(backbone, mode="shared", num_modalities=2)


@pytest.fixture(scope="module")
def brains() -> list:
    # lesion_type cycles none, tumour, wmh; lesion is 0 for "none", else 1
    return list(SyntheticBrains(9, size=32, modalities=MODALITIES, seed=0))


def config(**kwargs) -> ClassificationConfig:
    values = dict(steps=40, lr=1e-2, batch_size=2, test_fraction=0.34, seed=0)
    values.update(kwargs)
    return ClassificationConfig(**values)


def _in_unit_range(value: float) -> bool:
    return math.isfinite(value) and 0.0 <= value <= 1.0


def test_linear_probe_metrics_in_range_and_encoder_unchanged(brains: list) -> None:
    encoder = tiny_encoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    cfg = config(label_key="lesion_type")
    result = run_classification(encoder, brains, cfg, init="scratch")

    assert result.task == "classification/linear"
    assert result.extra["class_names"] == ["none", "tumour", "wmh"]
    assert set(result.split["train"]).isdisjoint(result.split["test"])
    # stratified: one test subject per class
    assert sorted(r["target"] for r in result.per_subject) == [0, 1, 2]
    for key in ("accuracy", "balanced_accuracy", "auroc"):
        assert _in_unit_range(result.metrics[key]), key
    assert result.history[-1] < result.history[0]
    json.dumps(result.to_dict(), allow_nan=False)

    train = [i for i, item in enumerate(brains) if item["subject_id"] in result.split["train"]]
    model, _, _ = fit_classification(encoder, brains, train, cfg)
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not any(p.requires_grad for p in model.encoder.parameters())
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_finetune_trains_the_encoder_and_gives_metrics_in_range(brains: list) -> None:
    encoder = tiny_encoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    cfg = config(mode="finetune", steps=3, lr=1e-3, label_key="lesion")
    result = run_classification(encoder, brains, cfg)
    assert result.task == "classification/finetune"
    assert len(result.history) == 3
    for key in ("accuracy", "balanced_accuracy", "auroc"):
        assert _in_unit_range(result.metrics[key]), key
    for record in result.per_subject:
        assert sum(record["probs"]) == pytest.approx(1.0, abs=1e-5)

    train = [0, 1, 2, 3]
    model, _, _ = fit_classification(encoder, brains, train, cfg)
    changed = [k for k, v in model.encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_probe_runs_differ_only_by_the_encoder_weights(brains: list) -> None:
    encoder = tiny_encoder(seed=3)
    cfg = config(steps=10, label_key="lesion")
    same = run_classification(encoder, brains, cfg)
    again = run_classification(tiny_encoder(seed=3), brains, cfg)
    other = run_classification(scratch_encoder_like(encoder, seed=7), brains, cfg, init="scratch")
    assert same.history == pytest.approx(again.history)
    assert same.split == other.split and same.config == other.config
    assert same.history != pytest.approx(other.history)


def test_summary_macro_auroc_over_three_classes() -> None:
    records = [
        {"pred": 0, "target": 0, "probs": [0.8, 0.1, 0.1]},
        {"pred": 1, "target": 1, "probs": [0.1, 0.8, 0.1]},
        {"pred": 1, "target": 2, "probs": [0.1, 0.5, 0.4]},
        {"pred": 2, "target": 2, "probs": [0.2, 0.2, 0.6]},
    ]
    summary = classification_summary(records, num_classes=3)
    assert summary["accuracy"] == pytest.approx(0.75)
    assert summary["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    # class 0 and 1 are separated perfectly, class 2 one-vs-rest: scores .1,.1 vs .4,.6 -> 1
    assert summary["auroc"] == pytest.approx(1.0)
    one_class = classification_summary(records[:1] * 2, num_classes=3)
    assert math.isnan(one_class["auroc"])


def test_missing_label_and_single_class_are_refused(brains: list) -> None:
    with pytest.raises(MissingLabelError, match="'grade'"):
        class_labels(brains, range(len(brains)), "grade")
    with pytest.raises(TaskError, match="single value"):
        class_labels(brains, [0, 3, 6], "lesion")
    with pytest.raises(TaskError, match="non-integer"):
        class_labels(brains, range(3), "brain_volume_ml")


def test_class_without_training_subject_is_refused(brains: list) -> None:
    with pytest.raises(EmptyClassError, match="wmh"):
        fit_classification(tiny_encoder(), brains, [0, 1, 3, 4], config(label_key="lesion_type"))


def test_encoder_modalities_must_fit(brains: list) -> None:
    encoder = tiny_encoder()
    encoder.modality_names = ("t1", "t2")
    with pytest.raises(IncompatibleEncoderError, match="unknown"):
        fit_classification(encoder, brains, [0, 1, 2], config())
    # a shared encoder pretrained on more modalities is re-wrapped around the same backbone
    wide = MultiModalEncoder(tiny_encoder().backbone, num_modalities=3)
    wide.modality_names = ("flair", "t2", "t1")
    adapted = adapt_encoder(wide, MODALITIES)
    assert adapted.num_modalities == 2 and adapted.backbone is wide.backbone
    stacked = MultiModalEncoder(
        build_backbone("resenc", in_channels=3, features=(8,), blocks_per_stage=1),
        mode="stacked",
        num_modalities=3,
    )
    stacked.modality_names = ("flair", "t2", "t1")
    with pytest.raises(IncompatibleEncoderError, match="stacked"):
        adapt_encoder(stacked, MODALITIES)


def test_volumes_of_other_sizes_need_input_size(brains: list) -> None:
    small = list(SyntheticBrains(3, size=16, modalities=MODALITIES, seed=0))
    with pytest.raises(TaskError, match="input_size"):
        fit_classification(tiny_encoder(), [*brains[:3], *small], [0, 1, 2, 3, 4, 5], config())
    with pytest.raises(IncompatibleEncoderError, match="size divisor"):
        fit_classification(tiny_encoder(), brains, [0, 1, 2], config(input_size=(30, 32, 32)))
