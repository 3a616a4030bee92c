"""Presets and their overrides."""

from __future__ import annotations

import pytest

from lightly_topo.benchmark import CONTROLS, CORE_METHODS, PRESETS, PresetError, get_preset
from lightly_topo.benchmark.presets import parse_override
from lightly_topo.benchmark.records import settings_fingerprint


def test_every_preset_compares_every_core_method_with_the_controls() -> None:
    for name, preset in PRESETS.items():
        assert set(CORE_METHODS) <= set(preset.methods), name
        assert set(CONTROLS) <= set(preset.methods), name
    for name in ("quick", "standard", "full"):
        assert len(PRESETS[name].seeds) >= 5, name
    assert len(PRESETS["smoke"].seeds) == 2
    assert PRESETS["quick"].time_budget_s == 900 and PRESETS["standard"].time_budget_s == 5400


def test_overrides_and_bad_values() -> None:
    preset = get_preset("quick", pretrain_volumes=7, seeds=[3, 4])
    assert preset.pretrain_volumes == 7 and preset.seeds == (3, 4)
    with pytest.raises(PresetError, match="unknown preset 'medium'"):
        get_preset("medium")
    with pytest.raises(PresetError, match="unknown preset fields \\['pretrain_steps'\\]"):
        get_preset("quick", pretrain_steps=3)
    with pytest.raises(PresetError, match="at least 2 distinct"):
        get_preset("quick", seeds=(0,))
    with pytest.raises(PresetError, match="unknown methods \\['simsiam'\\]"):
        get_preset("quick", methods=("scratch", "simsiam"))
    with pytest.raises(PresetError, match="probe_threads must be at least 1"):
        get_preset("quick", probe_threads=0)
    with pytest.raises(PresetError, match="needs at least the methods' budget"):
        get_preset("quick", supervised_volumes=10)
    with pytest.raises(PresetError, match="KEY=VALUE"):
        parse_override("pretrain_volumes")


def test_fingerprint_ignores_seeds_methods_and_budget_only() -> None:
    base = get_preset("smoke")
    same = settings_fingerprint(get_preset("smoke", seeds=(0, 1, 2), time_budget_s=5.0), None)
    assert settings_fingerprint(base, None) == same
    assert settings_fingerprint(get_preset("smoke", methods=("scratch",)), None) == same
    assert settings_fingerprint(get_preset("smoke", pretrain_volumes=3), None) != same
    assert settings_fingerprint(get_preset("smoke", probe_threads=1), None) != same
    assert settings_fingerprint(base, "/data") != same
