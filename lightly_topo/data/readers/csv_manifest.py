"""Reader of plain CSV/TSV manifests (one row per file)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lightly_topo.data.errors import LayoutError, ManifestError
from lightly_topo.data.modalities import normalize_modality
from lightly_topo.data.readers._common import parse_label, read_table, require_subjects
from lightly_topo.data.types import LabelValue, ModalityFile, Subject

#: Values of the modality column that mark a row as the subject's label map.
LABEL_MAP_NAMES = frozenset(
    {"seg", "label", "labels", "label_map", "labelmap", "segmentation", "mask"}
)
_RESERVED = {"subject", "session", "modality", "path", "channel", "dataset"}


def read_csv_manifest(
    path: str | Path,
    base_dir: str | Path | None = None,
    modality_map: Mapping[str, str] | None = None,
) -> list[Subject]:
    """Read a manifest with columns ``subject, modality, path``, then any label columns.

    One row per file. Optional columns: ``session``, ``channel`` (index into a 4D file) and
    ``dataset``. A row whose modality is ``seg``/``label``/``label_map``/``mask`` names the
    subject's label map. Every other column is a subject-level label (numbers are parsed,
    empty cells and ``n/a`` left out); rows of one subject must agree on them. Relative paths
    are resolved against ``base_dir`` (default: the manifest's folder). A ``.tsv`` (or
    tab-separated) file is read the same way.

    Example manifest::

        subject,modality,path,age,grade
        s01,T1w,s01/t1.nii.gz,54,2
        s01,FLAIR,s01/flair.nii.gz,54,2
        s01,seg,s01/seg.nii.gz,54,2

    Args:
        path: The CSV or TSV file.
        base_dir: Folder that relative paths start from.
        modality_map: Renames of raw modality names, e.g. ``{"MPRAGE_iso": "t1"}``.

    Raises:
        LayoutError: The file does not exist.
        ManifestError: A missing column, a subject named twice for one modality, an empty
            cell in a required column, a bad channel, or labels that disagree between rows.
        UnknownModalityError: A modality name the vocabulary cannot place.
        EmptyDatasetError: No rows.
    """
    p = Path(path)
    if not p.is_file():
        raise LayoutError(f"{p}: manifest file does not exist")
    base = Path(base_dir) if base_dir is not None else p.parent
    columns, rows = read_table(p)
    lower = {c.lower(): c for c in columns}
    missing = [c for c in ("subject", "modality", "path") if c not in lower]
    if missing:
        raise ManifestError(
            f"{p}: missing column(s) {', '.join(missing)} (columns: {', '.join(columns)}); "
            "a manifest needs subject, modality, path"
        )
    label_columns = [c for c in columns if c.lower() not in _RESERVED]
    subjects: dict[tuple[str, str | None], Subject] = {}
    where: dict[tuple[str, str | None, str], int] = {}
    for line, row in enumerate(rows, start=2):
        sid = row[lower["subject"]]
        raw_mod = row[lower["modality"]]
        raw_path = row[lower["path"]]
        if not sid or not raw_mod or not raw_path:
            raise ManifestError(f"{p}, line {line}: empty subject, modality or path cell")
        session = row.get(lower.get("session", ""), "") or None
        key = (sid, session)
        subject = subjects.get(key)
        if subject is None:
            dataset = row.get(lower.get("dataset", ""), "") or None
            subject = subjects[key] = Subject(sid, {}, session=session, dataset=dataset)
        labels: dict[str, LabelValue] = {}
        for c in label_columns:
            v = parse_label(row.get(c))
            if v is not None:
                labels[c] = v
        for name, value in labels.items():
            if name in subject.labels and subject.labels[name] != value:
                raise ManifestError(
                    f"{p}, line {line}: subject {subject.key!r} has label {name}={value!r}, "
                    f"an earlier row says {subject.labels[name]!r}"
                )
            subject.labels[name] = value
        file = Path(raw_path) if Path(raw_path).is_absolute() else base / raw_path
        is_label = raw_mod.strip().lower() in LABEL_MAP_NAMES
        modality = (
            "label_map"
            if is_label
            else normalize_modality((modality_map or {}).get(raw_mod, raw_mod), f"{p}, line {line}")
        )
        dup = (sid, session, modality)
        if dup in where:
            raise ManifestError(
                f"{p}, line {line}: subject {subject.key!r} is named twice for modality "
                f"{modality!r} (lines {where[dup]} and {line}); keep one row per subject and modality"
            )
        where[dup] = line
        if is_label:
            subject.label_map = file
            continue
        channel = None
        raw_channel = row.get(lower.get("channel", ""), "")
        if raw_channel:
            try:
                channel = int(raw_channel)
            except ValueError as err:
                raise ManifestError(
                    f"{p}, line {line}: channel {raw_channel!r} is not an integer"
                ) from err
        subject.images[modality] = ModalityFile(modality, file, channel)
    return require_subjects(
        [s for s in subjects.values() if s.images], p, "csv (subject, modality, path)"
    )
