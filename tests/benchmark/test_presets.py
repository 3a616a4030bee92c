"""Presets and their overrides."""

from __future__ import annotations

import pytest

from lightly_topo.benchmark import CORE_METHODS, PRESETS, PresetError, get_preset
from lightly_topo.benchmark.presets import parse_override
from lightly_topo.benchmark.runner import settings_fingerprint


def test_every_preset_compares_every_core_method() -> None:
    for name, preset in PRESETS.items():
        assert set(CORE_METHODS) <= set(preset.methods), name
        assert 1.0 in preset.low_label_fractions
    assert len(PRESETS["quick"].seeds) >= 3 and len(PRESETS["full"].seeds) >= 3
    assert len(PRESETS["smoke"].seeds) == 2


def test_overrides_and_bad_values() -> None:
    preset = get_preset("quick", pretrain_steps=7, seeds=[3, 4])
    assert preset.pretrain_steps == 7 and preset.seeds == (3, 4)
    with pytest.raises(PresetError, match="unknown preset 'medium'"):
        get_preset("medium")
    with pytest.raises(PresetError, match="unknown preset fields \\['pretrain_step'\\]"):
        get_preset("quick", pretrain_step=3)
    with pytest.raises(PresetError, match="at least 2 distinct"):
        get_preset("quick", seeds=(0,))
    with pytest.raises(PresetError, match="unknown methods \\['simsiam'\\]"):
        get_preset("quick", methods=("scratch", "simsiam"))
    with pytest.raises(PresetError, match=r"must include 1\.0"):
        get_preset("quick", low_label_fractions=(0.5,))
    with pytest.raises(PresetError, match="KEY=VALUE"):
        parse_override("pretrain_steps")
    assert get_preset("quick", split="kfold").split == "kfold"
    with pytest.raises(PresetError, match="split must be random or kfold"):
        get_preset("quick", split="loo")


def test_fingerprint_ignores_seeds_and_methods_only() -> None:
    base = get_preset("smoke")
    same = settings_fingerprint(get_preset("smoke", seeds=(0, 1, 2)), None, "synthetic")
    assert settings_fingerprint(base, None, "synthetic") == same
    assert settings_fingerprint(get_preset("smoke", seg_steps=3), None, "synthetic") != same
    assert settings_fingerprint(base, "/data", "synthetic") != same
