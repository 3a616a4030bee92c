"""Configuration schema, layering and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightly_topo.methods.config import (
    ConfigError,
    PretrainConfig,
    build_config,
    from_dict,
    load_yaml,
    to_dict,
)


def test_defaults_and_layers() -> None:
    config = build_config({"method": "simclr"}, {"trainer": {"max_steps": 7}}, None)
    assert isinstance(config, PretrainConfig)
    assert config.method == "simclr" and config.trainer.max_steps == 7
    later = build_config({"data": {"batch_size": 3}}, {"data": {"batch_size": 5}})
    assert later.data.batch_size == 5


def test_unknown_key_suggests_close_matches() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown key 'trainer.max_step' \(did you mean 'max_steps'\?\)"
    ):
        build_config({"trainer": {"max_step": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'dat'.*'data'"):
        build_config({"dat": {}})
    with pytest.raises(ConfigError, match="known keys of 'topo'"):
        build_config({"topo": {"zzz": 1}})


@pytest.mark.parametrize(
    "layer,message",
    [
        ({"trainer": {"max_steps": "ten"}}, "'trainer.max_steps' must be an int"),
        ({"trainer": {"max_steps": 2.5}}, "'trainer.max_steps' must be an int"),
        ({"trainer": {"progress": "yes"}}, "'trainer.progress' must be a bool"),
        ({"optim": {"lr": "fast"}}, "'optim.lr' must be a number"),
        ({"optim": {"betas": [0.9]}}, "'optim.betas' must be a list of 2"),
        ({"model": {"modality_handling": "mixed"}}, "one of 'shared', 'stacked'"),
        ({"data": {"modalities": "t1"}}, "'data.modalities' must be"),
        ({"data": 3}, "'data' must be a mapping"),
        ({"trainer": {"max_steps": 0}}, "'trainer.max_steps' must be at least 1"),
        ({"loss": {"mask_ratio": 1.5}}, "mask_ratio"),
        ({"trainer": {"devices": "many"}}, "'trainer.devices'"),
    ],
)
def test_ill_typed_values(layer: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(layer)


def test_numbers_as_yaml_strings_and_ints_as_floats() -> None:
    config = build_config({"optim": {"lr": "3e-4", "weight_decay": 0}})
    assert config.optim.lr == 3e-4 and isinstance(config.optim.weight_decay, float)


def test_method_defaults_apply_before_user_values() -> None:
    taco = build_config({"method": "taco", "optim": {"lr": 1e-3}})
    assert taco.optim.lr == 1e-3 and taco.optim.weight_decay == 0.1
    other_backbone = build_config({"method": "taco", "model": {"backbone": "resenc"}})
    assert other_backbone.model.backbone_kwargs == {}


def test_yaml_round_trip(tmp_path: Path) -> None:
    import yaml

    config = build_config({"method": "byol", "data": {"modalities": ["t1", "t2"]}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(config)))
    again = build_config(load_yaml(path))
    assert again == config
    assert from_dict(PretrainConfig, to_dict(config)) == config


def test_bad_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(tmp_path / "broken.yaml")
