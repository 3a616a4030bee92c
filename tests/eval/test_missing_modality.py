from __future__ import annotations

import json
import math

import pytest
import torch

from lightly_topo.data.synthetic import SyntheticBrains
from lightly_topo.eval.classification import ClassificationConfig, evaluate_classification
from lightly_topo.eval.missing_modality import modality_subsets, run_missing_modality
from lightly_topo.eval.segmentation import SegmentationConfig
from lightly_topo.eval.tasks import TaskError
from lightly_topo.models import MultiModalEncoder, build_backbone

MODALITIES = ("t1", "t2", "flair")


def tiny_encoder(num_modalities: int = 3) -> MultiModalEncoder:
    torch.manual_seed(0)
    backbone = build_backbone("resenc", features=(8, 16), strides=(2, 2), blocks_per_stage=1)
    return MultiModalEncoder(backbone, mode="shared", num_modalities=num_modalities)


@pytest.fixture(scope="module")
def brains() -> list:
    return list(SyntheticBrains(9, size=32, modalities=MODALITIES, seed=1))


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_subsets_enumerate_all_non_empty_combinations(m: int) -> None:
    names = [f"m{i}" for i in range(m)]
    subsets = modality_subsets(names)
    assert len(subsets) == 2**m - 1
    assert len({frozenset(s) for s in subsets}) == len(subsets)
    assert subsets[0] == tuple(names)
    assert all(s for s in subsets)
    assert [len(s) for s in subsets] == sorted((len(s) for s in subsets), reverse=True)


def test_subsets_refuse_duplicates_and_empty() -> None:
    with pytest.raises(TaskError, match="duplicates"):
        modality_subsets(["t1", "t1"])
    with pytest.raises(TaskError, match="empty"):
        modality_subsets([])


def test_classification_sweep_reports_every_subset_and_its_drop(brains: list) -> None:
    cfg = ClassificationConfig(steps=30, lr=1e-2, label_key="lesion_type", test_fraction=0.34)
    result = run_missing_modality(tiny_encoder(), brains, cfg, metric="accuracy")
    rows = result.metrics["subsets"]
    assert len(rows) == 7
    assert {frozenset(r["modalities"]) for r in rows} == {
        frozenset(s) for s in modality_subsets(MODALITIES)
    }
    assert rows[0]["modalities"] == list(MODALITIES) and rows[0]["drop"] == 0.0
    full = result.metrics["full"]
    assert full == rows[0]["metric"]
    for row in rows:
        assert row["metric"] == row["summary"]["accuracy"]
        assert row["drop"] == pytest.approx(full - row["metric"])
        assert 0.0 <= row["metric"] <= 1.0
    assert result.metrics["mean"] == pytest.approx(sum(r["metric"] for r in rows) / 7)
    assert result.metrics["mean_drop"] == pytest.approx(sum(r["drop"] for r in rows[1:]) / 6)
    n_test = len(result.split["test"])
    assert len(result.per_subject) == 7 * n_test
    json.dumps(result.to_dict(), allow_nan=False)


def test_dropped_modalities_are_masked_out_at_test_time(brains: list) -> None:
    from lightly_topo.eval.classification import fit_classification

    cfg = ClassificationConfig(steps=5, label_key="lesion")
    model, _, names = fit_classification(tiny_encoder(), brains, [0, 1, 2, 3, 4, 5], cfg)
    keep = torch.tensor([False, True, False])
    records, _ = evaluate_classification(model, brains, [6, 7], cfg, names, keep=keep)
    # the same prediction as an encoder that only ever sees t2
    only_t2 = [dict(item) for item in brains]
    for item in only_t2:
        item["mask"] = torch.tensor([False, True, False])
        item["images"] = {"t2": item["images"]["t2"]}
    expected, _ = evaluate_classification(model, only_t2, [6, 7], cfg, names)
    for got, want in zip(records, expected):
        assert got["probs"] == pytest.approx(want["probs"], abs=1e-5)


def test_segmentation_sweep_over_two_modalities(brains: list) -> None:
    two = [dict(item) for item in brains[:6]]
    for item in two:
        item["images"] = {k: item["images"][k] for k in ("t1", "flair")}
        item["mask"] = torch.ones(2, dtype=torch.bool)
        item["modality_names"] = ("t1", "flair")
    cfg = SegmentationConfig(
        steps=2, patch_size=(16, 16, 16), sw_overlap=0.0, sw_batch_size=4, test_fraction=0.34
    )
    result = run_missing_modality(tiny_encoder(2), two, cfg)
    assert [r["name"] for r in result.metrics["subsets"]] == ["t1+flair", "t1", "flair"]
    assert result.metrics["metric"] == "mean_dice"
    for row in result.metrics["subsets"]:
        value = row["metric"]
        assert math.isnan(value) or 0.0 <= value <= 1.0


def test_unknown_metric_or_modality_is_refused(brains: list) -> None:
    cfg = ClassificationConfig(steps=1, label_key="lesion", test_fraction=0.34)
    with pytest.raises(TaskError, match="metric 'dice'"):
        run_missing_modality(tiny_encoder(), brains, cfg, metric="dice")
    with pytest.raises(TaskError, match="outside"):
        run_missing_modality(tiny_encoder(), brains, cfg, subsets=[("t1", "pd")])
