"""Reader of IXI-named files (e.g. ``ixi_t1_2mm_cbica_ccl_nmf``)."""

from __future__ import annotations

import re
from pathlib import Path

from lightly_topo.data.readers._common import (
    add_image,
    label_table,
    nifti_stem,
    require_dir,
    require_subjects,
    walk_files,
)
from lightly_topo.data.types import LabelValue, ModalityFile, Subject

#: ``IXI012-HH-1211-T1[_<suffix>]``: subject id, modality, processing suffix.
IXI_RE = re.compile(
    r"^(?P<id>IXI\d{3}-[A-Za-z]+-\d{4})-(?P<mod>T1|T2|PD|MRA|DTI)(?:[_-](?P<rest>.*))?$"
)
_MODALITIES = {"T1": "t1", "T2": "t2", "PD": "pd"}
_LABEL_SUFFIXES = ("DLMUSE", "seg", "label")


def read_ixi(path: str | Path, labels_csv: str | Path | None = None) -> list[Subject]:
    """Read a folder of IXI files: ``IXI<nnn>-<site>-<nnnn>-{T1,T2,PD}[_<suffix>].nii.gz``.

    Files are found at any depth. A file whose suffix contains ``DLMUSE``, ``seg`` or ``label``
    is the subject's label map (the MUSE anatomical labels of ``ixi_t1_2mm_cbica_ccl_nmf``);
    MRA and DTI files are not read (outside the vocabulary). Labels come from ``labels_csv`` or
    the first ``*demog*.csv`` found: its ``MRID`` column (full id) or ``IXI_ID`` column
    (number) names the subject; ``Age``, ``Sex``... become labels.

    IXI data, brain-development.org (CC BY-SA 3.0); DLMUSE labels by CBICA (MIT).

    Args:
        path: A folder holding IXI files (e.g. ``ixi_t1_2mm_cbica_ccl_nmf``).
        labels_csv: Table of subject labels (default: the first ``*demog*.csv`` found).
    """
    root = require_dir(path, "read_ixi")
    subjects: dict[str, Subject] = {}
    demog: Path | None = Path(labels_csv) if labels_csv is not None else None
    for file in walk_files(root):
        if demog is None and file.suffix.lower() == ".csv" and "demog" in file.name.lower():
            demog = file
        stem = nifti_stem(file.name)
        m = None if stem is None else IXI_RE.match(stem)
        if m is None:
            continue
        sid, raw, rest = m.group("id"), m.group("mod"), m.group("rest") or ""
        subject = subjects.setdefault(sid, Subject(sid, {}, dataset="ixi"))
        if any(s.lower() in rest.lower() for s in _LABEL_SUFFIXES):
            subject.label_map = file
        elif raw in _MODALITIES:
            add_image(subject.images, ModalityFile(_MODALITIES[raw], file), sid)
    if demog is not None and demog.is_file():
        columns = demog.read_text(encoding="utf-8-sig").splitlines()[0]
        id_column = "MRID" if "MRID" in columns.split(",") else "IXI_ID"
        table = label_table(demog, id_column)
        for sid, subject in subjects.items():
            row: dict[str, LabelValue] = table.get(sid) or table.get(str(int(sid[3:6]))) or {}
            subject.labels.update(row)
    return require_subjects(
        [s for s in subjects.values() if s.images], root, "ixi (IXI<nnn>-<site>-<nnnn>-T1...)"
    )
