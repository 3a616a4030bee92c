"""``lightly-topo list``."""

from __future__ import annotations

import argparse

import pytest

from lightly_topo import registry
from lightly_topo.cli import list_cmd


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    list_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["list", *argv])
    return int(args.func(args))


def test_list_prints_every_entry_with_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([]) == 0
    out = capsys.readouterr().out
    for kind, name, description in registry.list():
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert description in line, (kind, name)
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
        assert any(line.split()[:1] == [method] for line in out.splitlines())
    assert "methods:" in out and "losses:" in out and "backbones:" in out


def test_list_one_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["backbone"]) == 0
    out = capsys.readouterr().out
    assert "backbones:" in out and "methods:" not in out and "swin" in out


def test_list_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown registry kind 'methd'"):
        _run(["methd"])


def test_every_registered_method_resolves_to_a_pretrain_method() -> None:
    from lightly_topo.methods import PretrainMethod

    for _, name, _ in registry.list("method"):
        cls = registry.get("method", name)
        assert issubclass(cls, PretrainMethod)
