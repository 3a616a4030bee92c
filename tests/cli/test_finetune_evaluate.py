"""``lightly-topo finetune`` and ``lightly-topo evaluate`` on a tiny checkpoint."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lightly_topo.cli import benchmark, evaluate, finetune
from lightly_topo.cli import main as cli_main

SYNTH = ["--synthetic-subjects", "8", "--synthetic-size", "16", "--patch-size", "16"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny 3D convolutions run several times faster on one thread than on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def commands(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = tuple(c for c in (benchmark, finetune, evaluate) if c not in cli_main._COMMANDS)
    monkeypatch.setattr(cli_main, "_COMMANDS", (*cli_main._COMMANDS, *extra))


def tiny_checkpoint(path: Path, modalities: list[str]) -> Path:
    from lightly_topo.checkpoint import save_pretrained
    from lightly_topo.models import MultiModalEncoder, build_backbone

    backbone = build_backbone("resenc", features=(4, 8), strides=(2, 2), blocks_per_stage=1)
    encoder = MultiModalEncoder(backbone, mode="shared", num_modalities=len(modalities))
    return save_pretrained(
        encoder,
        path,
        method="simclr",
        modalities=modalities,
        patch_size=16,
        spacing=1.0,
        normalization="zscore_foreground",
        training_steps=0,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "encoder.pt", ["t1", "flair"])


def test_finetune_segmentation_and_classification(checkpoint: Path, tmp_path: Path) -> None:
    seg = tmp_path / "seg.json"
    argv = [
        "finetune",
        "--checkpoint",
        str(checkpoint),
        "--task",
        "segmentation",
        "--out",
        str(seg),
    ]
    assert (
        cli_main.main([*argv, *SYNTH, "--steps", "2", "--whole-lesion", "--test-fraction", "0.25"])
        == 0
    )
    result = json.loads(seg.read_text())
    assert result["task"] == "segmentation" and result["init"] == "pretrained"
    assert 0.0 <= result["metrics"]["mean_dice"] <= 1.0
    assert result["extra"]["num_classes"] == 2
    assert result["checkpoint"] == str(checkpoint) and result["commit"]
    cls = tmp_path / "cls.json"
    argv = [
        "finetune",
        "--checkpoint",
        str(checkpoint),
        "--task",
        "classification",
        "--out",
        str(cls),
    ]
    assert (
        cli_main.main([*argv, *SYNTH, "--steps", "5", "--label", "lesion", "--from-scratch"]) == 0
    )
    result = json.loads(cls.read_text())
    assert result["task"] == "classification/linear" and result["init"] == "scratch"
    assert 0.0 <= result["metrics"]["balanced_accuracy"] <= 1.0


def test_evaluate_missing_modality_and_low_label(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mm.json"
    argv = [
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--task",
        "classification",
        "--out",
        str(out),
    ]
    assert cli_main.main([*argv, *SYNTH, "--steps", "5", "--test-fraction", "0.5"]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == "missing-modality"
    assert [row["name"] for row in result["metrics"]["subsets"]] == ["t1+flair", "t1", "flair"]
    assert all(math.isfinite(row["metric"]) for row in result["metrics"]["subsets"])
    assert "t1+flair" in capsys.readouterr().out
    low = tmp_path / "low.json"
    argv = [
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--task",
        "classification",
        "--out",
        str(low),
    ]
    extra = [
        "--protocol",
        "low-label",
        "--fractions",
        "0.5,1",
        "--steps",
        "5",
        "--test-fraction",
        "0.25",
    ]
    assert cli_main.main([*argv, *SYNTH, *extra]) == 0
    curve = json.loads(low.read_text())["curve"]
    assert [p["fraction"] for p in curve] == [0.5, 1.0]
    assert curve[0]["n_labelled"] < curve[1]["n_labelled"]


def test_errors_are_clean(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightly_topo.data.synthetic import SyntheticBrains

    base = ["--task", "classification", "--out", str(tmp_path / "r.json"), "--steps", "2"]
    # a dataset whose modalities the checkpoint never saw
    folder = SyntheticBrains(4, size=16, modalities=("t1", "t2")).save(tmp_path / "t1t2")
    code = cli_main.main(
        ["finetune", "--checkpoint", str(checkpoint), "--data", str(folder), *base]
    )
    assert code == 1
    assert "modalities" in capsys.readouterr().err
    # a label the subjects do not have
    code = cli_main.main(
        ["finetune", "--checkpoint", str(checkpoint), *base, *SYNTH, "--label", "grade"]
    )
    assert code == 1
    assert "grade" in capsys.readouterr().err
    # a fraction that leaves a class empty
    code = cli_main.main(
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            *base,
            *SYNTH,
            "--protocol",
            "low-label",
            "--fractions",
            "0.01,1",
            "--label",
            "lesion_type",
        ]
    )
    assert code == 1
    assert "fraction" in capsys.readouterr().err
    # a corrupt checkpoint
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert cli_main.main(["finetune", "--checkpoint", str(bad), *base, *SYNTH]) == 1
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
