from __future__ import annotations

import json
import logging

import pytest
import torch

from lightly_topo.data.synthetic import SyntheticBrains
from lightly_topo.eval.classification import ClassificationConfig, classification_strata
from lightly_topo.eval.low_label import labelled_subset, run_low_label
from lightly_topo.eval.segmentation import SegmentationConfig, segmentation_strata
from lightly_topo.eval.tasks import EmptyClassError, TaskError, make_split, split_indices
from lightly_topo.models import MultiModalEncoder, build_backbone

MODALITIES = ("t1", "flair")


def tiny_encoder() -> MultiModalEncoder:
    torch.manual_seed(0)
    backbone = build_backbone("resenc", features=(8, 16), strides=(2, 2), blocks_per_stage=1)
    return MultiModalEncoder(backbone, mode="shared", num_modalities=2)


@pytest.fixture(scope="module")
def brains() -> list:
    # 4 subjects each of lesion_type none / tumour / wmh
    return list(SyntheticBrains(12, size=32, modalities=MODALITIES, seed=2))


def _ids(brains: list, indices: list[int]) -> set[str]:
    return {brains[i]["subject_id"] for i in indices}


def test_classification_curve_is_nested_disjoint_and_covers_classes(brains: list) -> None:
    cfg = ClassificationConfig(steps=20, lr=1e-2, label_key="lesion_type", test_fraction=0.25)
    result = run_low_label(tiny_encoder(), brains, cfg, fractions=(1.0, 0.34, 0.67))
    assert [c["fraction"] for c in result.curve] == [0.34, 0.67, 1.0]
    assert [c["n_labelled"] for c in result.curve] == [3, 6, 9]
    train, test = set(result.split["train"]), set(result.split["test"])
    assert train.isdisjoint(test) and len(test) == 3
    labelled = [set(r.extra["labelled"]) for r in result.results]
    assert labelled[0] <= labelled[1] <= labelled[2] == train
    by_id = {item["subject_id"]: item["labels"]["lesion_type"] for item in brains}
    for kept in labelled:
        assert {by_id[s] for s in kept} == {"none", "tumour", "wmh"}
    for r, point in zip(result.results, result.curve):
        assert [p["subject_id"] for p in r.per_subject] == sorted(test)
        assert point["metric"] == r.metrics["balanced_accuracy"]
        assert 0.0 <= point["metric"] <= 1.0
        assert len(r.history) == 20
    json.dumps(result.to_dict(), allow_nan=False)


def test_fraction_leaving_a_class_empty_is_refused(brains: list) -> None:
    cfg = ClassificationConfig(steps=1, label_key="lesion_type", test_fraction=0.25)
    with pytest.raises(EmptyClassError, match=r"fraction 0\.1"):
        run_low_label(tiny_encoder(), brains, cfg, fractions=(0.1, 1.0))
    with pytest.raises(TaskError, match=r"\(0, 1\]"):
        run_low_label(tiny_encoder(), brains, cfg, fractions=(1.5,))


def test_segmentation_subsets_keep_every_class_or_fail(brains: list, caplog) -> None:
    cfg = SegmentationConfig(test_fraction=0.25, seed=0)
    strata = segmentation_strata(brains)
    assert set(strata) == {"", "1,2,3", "4"}
    subject_ids = [item["subject_id"] for item in brains]
    split = make_split(subject_ids, strata, cfg)
    train_idx, test_idx = split_indices(subject_ids, split)
    assert _ids(brains, train_idx).isdisjoint(_ids(brains, test_idx))

    third = labelled_subset(brains, train_idx, strata, 0.34, cfg)
    full = labelled_subset(brains, train_idx, strata, 1.0, cfg)
    assert set(third) <= set(full) == set(train_idx)
    assert {strata[i] for i in third} == {"", "1,2,3", "4"}

    # 10% cannot keep every class combination: drawn unstratified (logged), and one
    # subject cannot hold both the tumour classes and class 4
    with caplog.at_level(logging.WARNING, logger="lightly_topo.eval"):
        with pytest.raises(EmptyClassError, match=r"fraction 0\.1"):
            labelled_subset(brains, train_idx, strata, 0.1, cfg)
    assert "unstratified" in caplog.text


def test_classification_strata_follow_the_label(brains: list) -> None:
    assert classification_strata(brains, "lesion")[:3] == ["0", "1", "1"]
