"""``lightly-topo pretrain`` end to end from a YAML file, and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lightly_topo.cli import main as cli_main
from lightly_topo.cli.pretrain import overrides
from lightly_topo.methods.config import build_config, load_yaml

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "method": "taco",
    "data": {
        "path": "synthetic",
        "synthetic_subjects": 4,
        "synthetic_size": 16,
        "crop_size": 16,
        "batch_size": 2,
        "modalities": ["t1", "t2"],
    },
    "model": {
        "backbone": "resenc",
        "backbone_kwargs": {"features": [4, 8, 16], "blocks_per_stage": 1},
    },
    "loss": {"mask_patch": 4, "decoder_dim": 16},
    "topo": {"level": 2},
    "trainer": {"max_steps": 5, "checkpoint_every": 1, "log_every": 1},
}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure ``pretrain`` is a subcommand (the lead wires it into main)."""
    from lightly_topo.cli import list_cmd, pretrain

    commands = tuple(cli_main._COMMANDS)
    for module in (pretrain, list_cmd):
        if module not in commands:
            commands = (*commands, module)
    monkeypatch.setattr(cli_main, "_COMMANDS", commands)


def test_pretrain_from_yaml_end_to_end(
    cli: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightly_topo.checkpoint import load_pretrained

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    code, stdout, stderr = _run(
        [
            "pretrain",
            "--config",
            str(config_file),
            "--max-steps",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, stderr
    assert "done: taco on resenc, 2 steps" in stdout
    assert sorted(p.name for p in (out / "checkpoints").glob("*.ckpt")) == [
        "last.ckpt",
        "step-1.ckpt",
        "step-2.ckpt",
    ]
    metrics = out / "logs" / "csv" / "version_0" / "metrics.csv"
    header = metrics.read_text().splitlines()[0]
    for key in (
        "train/reconstruction",
        "train/intra",
        "train/inter",
        "monitor/valid_token_fraction",
    ):
        assert key in header
    saved = load_yaml(out / "config.yaml")
    assert saved["trainer"]["max_steps"] == 2 and saved["method"] == "taco"
    loaded = load_pretrained(out / "encoder" / "encoder.pt")
    assert loaded.metadata["method"] == "taco"
    assert loaded.metadata["backbone"]["name"] == "resenc"
    assert loaded.metadata["training_steps"] == 2

    code, stdout, stderr = _run(
        [
            "pretrain",
            "--config",
            str(config_file),
            "--max-steps",
            "3",
            "--out",
            str(out),
            "--resume",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, stderr
    assert "1 steps in this run" in stdout
    assert metrics.is_file() and (out / "logs" / "csv" / "version_1" / "metrics.csv").is_file()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--method", "tacoo"], "unknown method 'tacoo'. Did you mean 'taco'"),
        (["--method", "simclr", "--backbone", "resnet"], "unknown backbone 'resnet'"),
        (["--method", "simclr", "--data", "/nonexistent/folder"], "does not exist"),
        (["--config", "/nonexistent.yaml"], "does not exist"),
    ],
)
def test_pretrain_bad_input(
    cli: None, argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = _run(["pretrain", *argv, "--out", str(tmp_path / "x")], capsys)
    assert code == 1
    assert message in stderr


def test_pretrain_unknown_config_key_and_single_modality(
    cli: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: simclr\ntrainer:\n  max_step: 3\n")
    code, _, stderr = _run(["pretrain", "--config", str(bad)], capsys)
    assert code == 1 and "unknown key 'trainer.max_step' (did you mean 'max_steps'?)" in stderr
    single = tmp_path / "single.yaml"
    single.write_text(yaml.safe_dump({**TINY, "data": {**TINY["data"], "modalities": ["t1"]}}))
    code, _, stderr = _run(
        ["pretrain", "--config", str(single), "--out", str(tmp_path / "s")], capsys
    )
    assert code == 1 and "needs two co-registered modalities" in stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, stderr = _run(
        ["pretrain", "--method", "simclr", "--data", str(empty), "--out", str(tmp_path / "e")],
        capsys,
    )
    assert code == 1 and "no subjects" in stderr
    code, _, stderr = _run(["pretrain", "--data", "synthetic"], capsys)
    assert code == 2 and "no method given" in stderr


def test_flags_override_the_file() -> None:
    import argparse

    from lightly_topo.cli import pretrain

    parser = argparse.ArgumentParser()
    pretrain.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["pretrain", "--method", "byol", "--batch-size", "3", "--devices", "2", "--no-progress"]
    )
    config = build_config({"method": "simclr", "data": {"batch_size": 8}}, overrides(args))
    assert (config.method, config.data.batch_size, config.trainer.devices) == ("byol", 3, 2)
    assert config.trainer.progress is False


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    config = build_config(load_yaml(path))
    assert config.method
