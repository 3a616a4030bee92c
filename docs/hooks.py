"""MkDocs hooks of the lightly-topo docs (``hooks:`` in ``mkdocs.yml``; not a page).

* ``<!-- README_COMMANDS -->`` in a page becomes the install-and-run commands of the
  repository's ``README.md`` (the fenced ``bash`` blocks of its "Two commands" section), so
  the docs never drift from the README.
* ``<!-- BENCHMARK_RESULTS -->`` becomes every Markdown table under ``benchmarks/results/``
  that exists at build time: the ``quick`` preset's ``benchmark_quick/results.md`` first
  (or a note that it has not been run), then the component benchmarks. Images and data
  files beside them are copied into the site under ``benchmarks/results/`` and the tables'
  relative links are rewritten to point there, so a strict build never sees a broken link.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
QUICK = Path("benchmark_quick") / "results.md"
SITE_PREFIX = "benchmarks/results"
ASSET_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".json", ".csv"}

_FENCE = re.compile(r"```(?:bash|sh|console)\n(.*?)```", re.DOTALL)
_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
_HEADING = re.compile(r"^(#{1,4}) ", re.MULTILINE)


def readme_commands(readme: Path = ROOT / "README.md") -> str:
    """The README's command blocks (with the sentence before each) as Markdown."""
    if not readme.is_file():
        return "!!! warning\n    `README.md` was not found when the docs were built.\n"
    text = readme.read_text(encoding="utf-8")
    section = re.search(r"^## Two commands\n(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    body = section.group(1) if section else text
    parts = []
    for match in _FENCE.finditer(body):
        before = body[: match.start()].rstrip().split("\n\n")[-1].strip()
        intro = before if before and not before.startswith("```") else ""
        parts.append(f"{intro}\n\n```bash\n{match.group(1).rstrip()}\n```\n")
    if not parts:
        return "!!! warning\n    No command block was found in `README.md`.\n"
    return "\n".join(parts)


def _rewrite_links(markdown: str, folder: Path) -> str:
    """Relative links of a results file (relative to ``folder``) as site paths."""

    def fix(match: re.Match[str]) -> str:
        target = match.group(2)
        if re.match(r"^[a-z]+://|^#|^/|^mailto:", target):
            return match.group(0)
        resolved = (folder / target).resolve()
        try:
            rel = resolved.relative_to(RESULTS)
        except ValueError:
            return match.group(1) + target + match.group(3)
        if resolved.suffix.lower() not in ASSET_SUFFIXES or not resolved.is_file():
            return f"`{target}`"  # not copied into the site: show the name, no link
        return f"{match.group(1)}{SITE_PREFIX}/{rel.as_posix()}{match.group(3)}"

    return _LINK.sub(fix, markdown)


def _demote(markdown: str, levels: int = 2) -> str:
    return _HEADING.sub(lambda m: "#" * min(6, len(m.group(1)) + levels) + " ", markdown)


def _include(path: Path, levels: int) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return f"!!! warning\n    `{path.relative_to(ROOT)}` could not be read: {error}\n"
    return _demote(_rewrite_links(text.strip(), path.parent), levels)


def benchmark_results(results: Path = RESULTS) -> str:
    """Every results table under ``results`` as one Markdown section."""
    out = ["## Latest `quick` preset results\n"]
    quick = results / QUICK
    if quick.is_file():
        out.append(f"From `benchmarks/results/{QUICK.as_posix()}`.\n\n{_include(quick, 2)}\n")
    else:
        out.append(
            "!!! note\n    `benchmarks/results/benchmark_quick/results.md` did not exist when "
            "these docs were built: run `lightly-topo benchmark --preset quick --out "
            "benchmarks/results/benchmark_quick` (see above) and rebuild the docs.\n"
        )
    others = sorted(p for p in results.rglob("*.md") if p.is_file() and p != quick)
    out.append("## Component benchmarks\n")
    if not others:
        out.append("No component benchmark results were found under `benchmarks/results/`.\n")
    for path in others:
        rel = path.relative_to(results).as_posix()
        out.append(f"### `{rel}`\n\n{_include(path, 3)}\n")
    return "\n".join(out)


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    """Copies the benchmark images and data files into the site."""
    if RESULTS.is_dir():
        for path in sorted(RESULTS.rglob("*")):
            if path.is_file() and path.suffix.lower() in ASSET_SUFFIXES:
                rel = path.relative_to(RESULTS.parent.parent).as_posix()
                if files.get_file_from_path(rel) is None:
                    files.append(
                        File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"])
                    )
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files, **kwargs: Any) -> str:
    """Fills the ``README_COMMANDS`` and ``BENCHMARK_RESULTS`` markers."""
    if "<!-- README_COMMANDS -->" in markdown:
        markdown = markdown.replace("<!-- README_COMMANDS -->", readme_commands())
    if "<!-- BENCHMARK_RESULTS -->" in markdown:
        markdown = markdown.replace("<!-- BENCHMARK_RESULTS -->", benchmark_results())
    return markdown
