"""Griffe extension of the docs build: reads the package's reST-flavoured docstrings as Markdown.

The package's docstrings follow Lightly's style: Google sections, but also Sphinx roles
(``:class:`~a.B```), reST literal blocks (``::``), prose lists indented under a sentence
ending in ``:`` and ``>>>`` examples after the prose, without an ``Examples:`` header. Read as
Markdown, ``item["images"]["t1"]`` in a bare doctest line is a reference link (which the
strict build refuses) and an indented paragraph is a code block. This extension rewrites the
docstring text before it is rendered:

* Sphinx roles become inline code (``B`` for ``~a.B``, ``a.B`` otherwise);
* a reST literal block (a line ending in ``::`` and the indented block after it) becomes a
  fenced code block;
* an indented block under a prose line ending in ``:`` (not a Google section header) is
  dedented, so its lists and paragraphs render as such;
* doctest blocks outside an ``Examples:`` section are fenced as ``pycon``; a singular
  ``Example:`` header is read as ``Examples:``.

It changes the rendered pages only, never the code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADER = re.compile(r"^(\s*)([A-Z][A-Za-z ]*):\s*$")
_EXAMPLE_HEADERS = {"Example", "Examples"}
_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|data|mod|obj|exc|const|ref|term|any):`(~?)([^`<]*?)"
    r"(?:\s*<([^`>]+)>)?`"
)


def _role(match: re.Match[str]) -> str:
    tilde, text, target = match.group(1), match.group(2).strip(), match.group(3)
    if target:
        return f"`{text}`"
    return f"`{text.rsplit('.', 1)[-1] if tilde else text}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_end(lines: list[str], start: int, base: int) -> int:
    """Index after the block of lines indented deeper than ``base`` starting at ``start``
    (blank lines inside it included, trailing blank lines excluded)."""
    end = last = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        if lines[end].strip():
            last = end + 1
        end += 1
    return last


def _dedent(block: list[str]) -> list[str]:
    width = min((_indent(line) for line in block if line.strip()), default=0)
    return [line[width:] if line.strip() else "" for line in block]


def literal_blocks(text: str) -> str:
    """reST literal blocks (``::``) as fenced code blocks."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.lstrip().startswith(">>>"):
            base = _indent(line)
            head = line.rstrip()[:-2].rstrip()
            if head.strip():
                out.append(head + ":")
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            end = _block_end(lines, j, base)
            if end > j:
                pad = " " * base
                code = [pad + c if c else "" for c in _dedent(lines[j:end])]
                out.extend(["", f"{pad}```", *code, f"{pad}```"])
                i = end
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def dedent_prose_blocks(text: str) -> str:
    """Dedents indented blocks under an unindented prose line ending in ``:``."""
    lines, out, i = text.split("\n"), [], 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if in_fence or _indent(line) or not line.rstrip().endswith(":") or _HEADER.match(line):
            continue
        end = _block_end(lines, i, 0)
        if end > i and not lines[i].lstrip().startswith(">>>"):
            block = _dedent(lines[i:end])
            if block and block[0].strip():
                out.append("")  # a list or paragraph needs a blank line after the sentence
            out.extend(block)
            i = end
    return "\n".join(out)


def fence_doctests(text: str) -> str:
    """``text`` with its doctest blocks outside ``Examples:`` sections fenced as ``pycon``."""
    lines = text.split("\n")
    out: list[str] = []
    section: str | None = None
    section_indent = -1
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = _indent(line)
        if stripped.startswith("```"):
            in_fence = not in_fence
        header = _HEADER.match(line)
        if header and not in_fence:
            section, section_indent = header.group(2), indent
            if section == "Example":
                line = f"{header.group(1)}Examples:"
            out.append(line)
            i += 1
            continue
        if stripped and section is not None and indent <= section_indent:
            section = None
        if stripped.startswith(">>>") and not in_fence and section not in _EXAMPLE_HEADERS:
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
                i += 1
            pad = " " * indent
            out.extend([f"{pad}```pycon", *(pad + b for b in block), f"{pad}```"])
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def markdownify(text: str) -> str:
    """All the rewrites of the module docstring, in order."""
    text = _ROLE.sub(_role, text)
    return fence_doctests(dedent_prose_blocks(literal_blocks(text)))


class DoctestFences(griffe.Extension):
    """Rewrites every docstring with :func:`markdownify` (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdownify(obj.docstring.value)
