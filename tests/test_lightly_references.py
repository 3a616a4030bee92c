"""Every dotted Lightly name that the docstrings and docs mention imports as written."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATTERN = re.compile(r"(?<![\w.])lightly(?:\.[a-z_][a-z0-9_]*)+\.[A-Z]\w*")


def _references() -> list[tuple[str, str]]:
    found = []
    for path in sorted([*ROOT.glob("lightly_topo/**/*.py"), *ROOT.glob("docs/**/*.md")]):
        for name in sorted(set(PATTERN.findall(path.read_text(encoding="utf-8")))):
            found.append((str(path.relative_to(ROOT)), name))
    return found


def _resolve(name: str) -> object:
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def test_the_pattern_finds_the_references() -> None:
    names = {name for _, name in _references()}
    assert "lightly.transforms.multi_view_transform.MultiViewTransform" in names


@pytest.mark.parametrize(("path", "name"), _references())
def test_reference_imports(path: str, name: str) -> None:
    try:
        _resolve(name)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{path} names {name}, which does not import: {error}")


def test_a_wrong_reference_fails() -> None:
    with pytest.raises(AttributeError):
        _resolve("lightly.transforms.MultiViewTransform")
