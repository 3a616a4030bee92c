"""Helpers shared by the layout readers."""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

from lightly_topo.data.errors import EmptyDatasetError, LayoutError, ManifestError
from lightly_topo.data.types import LabelValue, ModalityFile, Subject

NIFTI_RE = re.compile(r"^(?P<stem>.+?)\.nii(?:\.gz)?$", re.IGNORECASE)
_MISSING_VALUES = {"", "na", "n/a", "nan", "null", "?"}


def nifti_stem(name: str) -> str | None:
    """The file name without ``.nii``/``.nii.gz``, or ``None`` for other files."""
    m = NIFTI_RE.match(name)
    return None if m is None or name.startswith(".") else m.group("stem")


def parse_label(value: str | float | int | None) -> LabelValue | None:
    """A label cell as int, float or str; ``None`` for an empty or missing cell (``n/a``, ``NA``, ``nan``, ``null``, ``?``).

    Words such as ``none`` or ``unknown`` are categories, not missing values.

    >>> parse_label("3"), parse_label("2.5"), parse_label("F"), parse_label("n/a")
    (3, 2.5, 'F', None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return None if isinstance(value, float) and math.isnan(value) else value
    text = str(value).strip()
    if text.lower() in _MISSING_VALUES:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return None if math.isnan(number) else number


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Rows of a CSV (or TSV, by extension or content) file as dicts of strings."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise ManifestError(f"{path}: cannot read the table ({err})") from err
    lines = text.splitlines()
    if not lines:
        raise ManifestError(f"{path}: empty table (no header row)")
    delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in lines[0] else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    return columns, rows


def label_table(path: Path, id_column: str) -> dict[str, dict[str, LabelValue]]:
    """Subject-level labels from a table: ``{id: {column: value}}`` (empty cells left out)."""
    columns, rows = read_table(path)
    if id_column not in columns:
        raise ManifestError(f"{path}: no column {id_column!r} (columns: {', '.join(columns)})")
    out: dict[str, dict[str, LabelValue]] = {}
    for i, row in enumerate(rows, start=2):
        sid = row[id_column]
        if sid in out:
            raise ManifestError(f"{path}, line {i}: subject {sid!r} appears twice")
        labels = {}
        for c in columns:
            if c == id_column:
                continue
            v = parse_label(row.get(c))
            if v is not None:
                labels[c] = v
        out[sid] = labels
    return out


def add_image(
    images: dict[str, ModalityFile],
    file: ModalityFile,
    subject: str,
    on_duplicate: str = "error",
) -> bool:
    """Add ``file`` to a subject's images; returns False if it was a duplicate that was dropped.

    ``on_duplicate="error"`` raises :class:`ManifestError`; ``"first"`` keeps the file already
    there.
    """
    old = images.get(file.modality)
    if old is None:
        images[file.modality] = file
        return True
    if on_duplicate == "first":
        return False
    raise ManifestError(
        f"subject {subject!r} has two files for modality {file.modality!r}: {old.path} and "
        f"{file.path}; keep one (or name different sessions)"
    )


def require_dir(path: str | Path, what: str) -> Path:
    """``path`` as a Path, checked to be a folder."""
    p = Path(path)
    if not p.is_dir():
        raise LayoutError(f"{p}: not a folder; {what} expects a folder")
    return p


def require_subjects(subjects: list[Subject], path: Path, what: str) -> list[Subject]:
    """Sort subjects by key; raise :class:`EmptyDatasetError` if there are none."""
    if not subjects:
        raise EmptyDatasetError(f"{path}: no subject found for layout {what}")
    return sorted(subjects, key=lambda s: (s.dataset or "", s.key))


def walk_files(root: Path, max_depth: int = 8) -> Iterator[Path]:
    """Files under ``root`` in sorted order (hidden files and folders skipped)."""
    base = len(root.parts)
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).parts) - base
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < max_depth else []
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name
