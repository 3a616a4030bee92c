"""The docs site builds in strict mode, and its build hooks do what the pages rely on."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"
FIGURE = DOCS / "assets" / "taco_tokens.png"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _text(html_file: Path) -> str:
    """The visible text of a built page (tags removed: code is split into spans)."""
    return re.sub(r"<[^>]+>", "", html_file.read_text(encoding="utf-8"))


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    for package in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(package)
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(site)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert "taco_tokens.png" in (site / "method.html").read_text(encoding="utf-8")
    assert "PseudoCorrespondenceLoss" in _text(site / "method.html")
    assert (site / "assets" / "taco_tokens.png").is_file()
    loss_api = _text(site / "api" / "loss.html")
    assert "TopoAlignLoss" in loss_api and "gather_distributed" in loss_api
    started = _text(site / "getting-started.html")
    assert "python3 -m venv .venv" in started and "constraints.txt" in started
    assert "Component benchmarks" in _text(site / "benchmarks.html")
    examples = _text(site / "examples.html")
    assert "def main() -&gt; None:" in examples and "--8&lt;--" not in examples


def test_figure_is_committed_and_small() -> None:
    assert FIGURE.is_file()
    assert FIGURE.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert FIGURE.stat().st_size < 500 * 1024


def test_readme_commands_are_copied_verbatim() -> None:
    hooks = _load("hooks")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    commands = hooks.readme_commands()
    blocks = [line for line in commands.splitlines() if line.startswith("python3 -m venv")]
    assert blocks, commands
    for line in blocks:
        assert line in readme


def test_readme_commands_of_a_given_readme(tmp_path: Path) -> None:
    hooks = _load("hooks")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n## Two commands\n\nRun it:\n\n```bash\nfoo --bar\n```\n\n## Other\n\n"
        "```bash\nnot this\n```\n"
    )
    out = hooks.readme_commands(readme)
    assert "Run it:" in out and "foo --bar" in out and "not this" not in out


def test_benchmark_results_with_and_without_quick(tmp_path: Path) -> None:
    hooks = _load("hooks")
    (tmp_path / "loss_cpu.md").write_text("# Loss\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    without = hooks.benchmark_results(tmp_path)
    assert "did not exist" in without and "`loss_cpu.md`" in without and "| 1 | 2 |" in without
    quick = tmp_path / "benchmark_quick"
    quick.mkdir()
    (quick / "results.md").write_text("# Quick\n\n| method | dice |\n|---|---|\n| taco | 0.5 |\n")
    with_quick = hooks.benchmark_results(tmp_path)
    assert "did not exist" not in with_quick and "| taco | 0.5 |" in with_quick
    assert with_quick.index("| taco | 0.5 |") < with_quick.index("`loss_cpu.md`")
    # headings demoted under the page's sections: the quick table under an h2, the others
    # under an h3 naming the file
    assert "\n### Quick" in with_quick and "\n#### Loss" in with_quick


def test_benchmark_links_point_into_the_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = _load("hooks")
    monkeypatch.setattr(hooks, "RESULTS", tmp_path)
    (tmp_path / "plot.png").write_bytes(b"\x89PNG")
    text = "![curve](plot.png) [gone](missing.png) [web](https://example.org/x.png)"
    out = hooks._rewrite_links(text, tmp_path)
    assert "](benchmarks/results/plot.png)" in out
    assert "`missing.png`" in out and "](https://example.org/x.png)" in out


def test_doctest_blocks_outside_examples_are_fenced() -> None:
    fence = _load("griffe_doctests").fence_doctests
    text = 'Prose.\n\nArgs:\n    x: A thing.\n\n>>> d["t1"][0]\n1\n\nExamples:\n    >>> f(1)\n    2'
    out = fence(text)
    assert '```pycon\n>>> d["t1"][0]\n1\n```' in out
    assert "Examples:\n    >>> f(1)\n    2" in out
    assert fence("Example:\n    >>> f(1)\n    2") == "Examples:\n    >>> f(1)\n    2"


def test_rest_markup_becomes_markdown() -> None:
    markdownify = _load("griffe_doctests").markdownify
    assert markdownify("See :class:`~lightly_topo.loss.TopoAlignLoss`.") == "See `TopoAlignLoss`."
    assert markdownify(":func:`a.b.c` and :class:`Foo <a.Foo>`") == "`a.b.c` and `Foo`"
    literal = markdownify("Declare, in ``pyproject.toml``::\n\n    [x]\n    y = 1\n\nDone.")
    assert literal == "Declare, in ``pyproject.toml``:\n\n```\n[x]\ny = 1\n```\n\nDone."
    prose = markdownify(
        "With two, the pairs are:\n    - one\n      more\n    - two\n\n    Tail.\n\nArgs:\n    x: X."
    )
    assert prose == "With two, the pairs are:\n\n- one\n  more\n- two\n\nTail.\n\nArgs:\n    x: X."
