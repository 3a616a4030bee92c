from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types

import pytest

from lightly_topo import registry
from lightly_topo.registry import (
    DuplicateEntryError,
    EntryResolutionError,
    PluginWarning,
    Registry,
    UnknownEntryError,
)


def test_builtin_entries_are_listed_with_descriptions() -> None:
    names = {(kind, name) for kind, name, _ in registry.list()}
    for method in (
        "simclr",
        "byol",
        "mae",
        "taco",
        "simclr+topo",
        "byol+topo",
        "mae+topo",
        "xmodal-simclr",
    ):
        assert ("method", method) in names
    for loss in (
        "ntxent",
        "negcos",
        "dcl",
        "barlowtwins",
        "vicreg",
        "cross_modal_triplet",
        "pseudo_correspondence",
        "topo_align",
    ):
        assert ("loss", loss) in names
    assert [n for _, n, _ in registry.list("backbone")] == ["resenc", "swin", "vit"]
    assert [n for _, n, _ in registry.list("transform")] == [
        "byol3d",
        "mae3d",
        "simclr3d",
        "topo3d",
    ]
    assert all(desc for _, _, desc in registry.list())
    assert (
        registry.entry("transform", "simclr3d").target
        == "lightly_topo.transforms:SimCLRTransform3D"
    )


def test_get_and_create_resolve_lightly_losses_and_our_backbones() -> None:
    from lightly.loss import NTXentLoss

    from lightly_topo.models import ResEncBackbone

    assert registry.get("loss", "ntxent") is NTXentLoss
    assert registry.create("loss", "ntxent", temperature=0.2).temperature == 0.2
    net = registry.create("backbone", "resenc", features=(4, 8), blocks_per_stage=1)
    assert isinstance(net, ResEncBackbone)


def test_importing_the_registry_imports_no_heavy_package() -> None:
    code = (
        "import sys; from lightly_topo import registry; registry.list(); "
        "heavy = [m for m in ('torch', 'lightly', 'monai', 'lightly_topo.models') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_target_fails_only_when_resolved() -> None:
    reg = Registry(load_plugins=False)
    reg.register("method", "ghost", "lightly_topo_no_such_module:Ghost", "not installed")
    assert ("method", "ghost") in reg
    with pytest.raises(EntryResolutionError, match="lightly_topo_no_such_module"):
        reg.get("method", "ghost")
    reg.register("loss", "gone", "lightly.loss:NoSuchLoss", "renamed")
    with pytest.raises(EntryResolutionError, match="'NoSuchLoss' does not exist"):
        reg.get("loss", "gone")


def test_unknown_names_and_kinds_suggest_close_matches() -> None:
    with pytest.raises(UnknownEntryError, match="Did you mean 'ntxent'"):
        registry.get("loss", "ntxnet")
    with pytest.raises(UnknownEntryError, match="Did you mean 'backbone'"):
        registry.get("backbones", "swin")
    with pytest.raises(UnknownEntryError, match=r"Available: .*resenc"):
        registry.create("backbone", "unet")


def test_register_decorator_duplicates_and_bad_targets() -> None:
    reg = Registry(load_plugins=False)

    @reg.register("loss", "mine", description="my loss\nmore text")
    class MyLoss:
        pass

    assert reg.get("loss", "mine") is MyLoss
    assert reg.list("loss") == [("loss", "mine", "my loss")]
    with pytest.raises(DuplicateEntryError, match="overwrite=True"):
        reg.register("loss", "mine", "a.b:C")
    reg.register("loss", "mine", "a.b:C", overwrite=True)
    assert reg.entry("loss", "mine").target == "a.b:C"
    with pytest.raises(registry.RegistryError, match=r"package\.module:attr"):
        reg.register("loss", "bad", "no_colon")
    reg.register("head", "linear", "torch.nn:Linear", "a new kind")
    assert "head" in reg.kinds()


def _entry_point(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=registry.PLUGIN_GROUP)


def test_plugins_from_entry_points_load_once_and_broken_ones_warn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def register_callable(reg: Registry) -> None:
        calls.append("callable")
        reg.register("loss", "plugin_loss", "torch.nn:L1Loss", "from a callable plugin")

    callable_module = types.ModuleType("fake_topo_plugin_a")
    callable_module.register_callable = register_callable  # type: ignore[attr-defined]
    module_plugin = types.ModuleType("fake_topo_plugin_b")
    module_plugin.register = lambda reg: reg.register(  # type: ignore[attr-defined]
        "backbone", "plugin_net", "torch.nn:Identity", "from a module plugin"
    )
    monkeypatch.setitem(sys.modules, "fake_topo_plugin_a", callable_module)
    monkeypatch.setitem(sys.modules, "fake_topo_plugin_b", module_plugin)
    eps = [
        _entry_point("good_callable", "fake_topo_plugin_a:register_callable"),
        _entry_point("good_module", "fake_topo_plugin_b"),
        _entry_point("broken", "fake_topo_plugin_missing:register"),
    ]
    seen_groups: list[str] = []

    def fake_entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        seen_groups.append(group)
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    reg = Registry()
    assert calls == []  # lazily: nothing loaded before the first lookup
    with pytest.warns(PluginWarning, match="'broken'.*fake_topo_plugin_missing"):
        assert reg.get("loss", "plugin_loss").__name__ == "L1Loss"
    assert ("backbone", "plugin_net") in reg
    reg.list()
    reg.get("backbone", "plugin_net")
    assert calls == ["callable"] and seen_groups == ["lightly_topo.plugins"]
