from __future__ import annotations

import pytest
import torch

from lightly_topo.data import collate_subjects


def _item(sid: str, names=("t1", "t2"), have=("t1",), shape=(2, 3, 4), label=True, labels=None):
    return {
        "subject_id": sid,
        "session": None,
        "images": {
            m: torch.full((1, *shape), float(i + 1)) for i, m in enumerate(names) if m in have
        },
        "mask": torch.tensor([m in have for m in names]),
        "modality_names": tuple(names),
        "label_map": torch.ones((1, *shape), dtype=torch.int64) if label else None,
        "labels": dict(labels or {}),
        "affine": torch.eye(4, dtype=torch.float64),
    }


def test_batch_layout_and_missing_channel() -> None:
    batch = collate_subjects([_item("a", have=("t1", "t2")), _item("b", have=("t2",))])
    assert batch["image"].dtype == torch.float32 and tuple(batch["image"].shape) == (2, 2, 2, 3, 4)
    assert batch["mask"].tolist() == [[True, True], [False, True]]
    assert torch.all(batch["image"][1, 0] == 0) and torch.all(batch["image"][1, 1] == 2)
    assert batch["label_map"].dtype == torch.int64 and tuple(batch["label_map"].shape) == (
        2,
        1,
        2,
        3,
        4,
    )
    assert batch["affine"].dtype == torch.float64 and tuple(batch["affine"].shape) == (2, 4, 4)
    assert batch["subject_id"] == ["a", "b"]
    assert batch["modality_names"] == ("t1", "t2")


def test_labels_union_and_label_map_none() -> None:
    batch = collate_subjects(
        [_item("a", labels={"age": 3}), _item("b", label=False, labels={"sex": "F"})]
    )
    assert batch["labels"] == {"age": [3, None], "sex": [None, "F"]}
    assert batch["label_map"] is None


def test_extra_keys_are_default_collated() -> None:
    a, b = _item("a"), _item("b")
    a["view"], b["view"] = torch.zeros(3), torch.ones(3)
    assert tuple(collate_subjects([a, b])["view"].shape) == (2, 3)


def test_bad_batches() -> None:
    with pytest.raises(ValueError, match="no items"):
        collate_subjects([])
    with pytest.raises(ValueError, match=r"'b'.*spatial shape \(2, 3, 5\)"):
        collate_subjects([_item("a"), _item("b", shape=(2, 3, 5))])
    with pytest.raises(ValueError, match="modality_names"):
        collate_subjects([_item("a"), _item("b", names=("t1", "flair"))])
