"""``lightly-topo pretrain`` on a machine without a GPU: CPU-sized settings for unset keys,
the peak-memory preflight and ``--set``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightly_topo.cli import main as cli_main
from lightly_topo.cli.pretrain import CPU_DEFAULTS, cpu_layer
from lightly_topo.methods.config import ConfigError, build_config, dotted_layer, parse_set
from lightly_topo.methods.memory import check_memory, estimate_step_bytes, saved_bytes
from lightly_topo.methods.train import resolve_method
from lightly_topo.models import build_backbone


@pytest.mark.parametrize(
    ("layers", "accelerator", "expected"),
    [
        ([None, {}], "cpu", CPU_DEFAULTS),
        (
            [{"data": {"crop_size": 48}}],
            "cpu",
            {"model": CPU_DEFAULTS["model"], "data": {"batch_size": 2, "synthetic_size": 48}},
        ),
        (
            [{"model": {"backbone": "swin"}}, {"data": {"batch_size": 1}}],
            "cpu",
            {"data": {"crop_size": 32, "synthetic_size": 48}},
        ),
        ([{}], "gpu", {}),
    ],
)
def test_cpu_settings_fill_only_the_keys_the_user_left_unset(layers, accelerator, expected) -> None:  # type: ignore[no-untyped-def]
    assert cpu_layer(layers, accelerator) == expected


def test_the_first_natural_command_fits_a_cpu_machine(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    if torch.cuda.is_available():
        pytest.skip("the CPU-sized settings apply without a GPU")
    argv = ["pretrain", "--method", "taco", "--data", "synthetic", "--max-steps", "2"]
    argv += ["--out", str(tmp_path), "--no-progress", "--set", "data.synthetic_subjects=4"]
    assert cli_main.main(argv) == 0
    err = capsys.readouterr().err
    assert "no GPU: CPU-sized settings" in err and "data.crop_size=32" in err
    assert (tmp_path / "encoder" / "encoder.pt").is_file()
    config = (tmp_path / "config.yaml").read_text()
    assert "backbone: resenc" in config and "synthetic_subjects: 4" in config


def test_the_paper_recipe_is_refused_at_once_where_it_cannot_fit(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["pretrain", "--method", "taco", "--backbone", "swin", "--crop-size", "96"]
    argv += ["--batch-size", "6", "--max-steps", "1", "--out", str(tmp_path), "--no-progress"]
    argv += ["--set", "data.synthetic_subjects=2", "--set", "data.synthetic_size=96"]
    argv += ["--set", "trainer.accelerator=cpu", "--set", 'data.modalities=["t1", "t2"]']
    # 96^3 swin with 6 subject pairs: tens of GiB (the CI machine has 24 GiB, or less free)
    assert cli_main.main(argv) == 1
    err = capsys.readouterr().err
    assert "one training step needs about" in err and "lower data.crop_size" in err
    assert not (tmp_path / "checkpoints").exists()


def test_memory_estimate_grows_with_the_batch_and_refuses_what_exceeds_free_memory() -> None:
    layer = {
        "method": "simclr",
        "model": {
            "backbone": "resenc",
            "backbone_kwargs": {"features": [4, 8], "strides": [2, 2], "blocks_per_stage": 1},
        },
        "data": {"crop_size": 16, "batch_size": 2},
    }
    small = build_config(layer)
    large = build_config(layer, {"data": {"batch_size": 8}})
    method = resolve_method("simclr")
    assert estimate_step_bytes(large, method, 2) > 3 * estimate_step_bytes(small, method, 2)
    backbone = build_backbone("resenc", features=[4, 8], strides=[2, 2], blocks_per_stage=1)
    assert saved_bytes(backbone, 32) > 4 * saved_bytes(backbone, 16)  # about the voxel ratio
    huge = build_config(layer, {"data": {"crop_size": 512, "batch_size": 64}})
    with pytest.raises(ConfigError, match=r"skip this check with trainer\.memory_check=false"):
        check_memory(huge, method, 4, "cpu")


def test_set_reads_dotted_keys_with_json_values() -> None:
    pairs = [parse_set("optim.lr=1e-3"), parse_set("model.backbone=resenc")]
    assert dotted_layer(pairs) == {"optim": {"lr": 0.001}, "model": {"backbone": "resenc"}}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set("optim.lr")
