"""Layout detection and the one entry point :func:`read_subjects`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightly_topo.data.errors import LayoutError
from lightly_topo.data.readers._common import nifti_stem, read_table, walk_files
from lightly_topo.data.readers.bids import read_bids
from lightly_topo.data.readers.brats import BRATS_RE, read_brats
from lightly_topo.data.readers.csv_manifest import read_csv_manifest
from lightly_topo.data.readers.decathlon import read_decathlon
from lightly_topo.data.readers.deepmedic import read_deepmedic
from lightly_topo.data.readers.ixi import IXI_RE, read_ixi
from lightly_topo.data.readers.lgg import read_lgg
from lightly_topo.data.readers.ms_lesjak import read_ms_lesjak
from lightly_topo.data.readers.nnssl import read_nnssl_json
from lightly_topo.data.types import Subject

#: Layout name -> reader. Real-set folder names of ``shared/data`` are aliases.
READERS: dict[str, Callable[..., list[Subject]]] = {
    "brats": read_brats,
    "decathlon": read_decathlon,
    "bids": read_bids,
    "nnssl": read_nnssl_json,
    "csv": read_csv_manifest,
    "lgg": read_lgg,
    "ms_lesjak": read_ms_lesjak,
    "deepmedic": read_deepmedic,
    "ixi": read_ixi,
}
ALIASES = {
    "tcga_lgg_buda2019": "lgg",
    "ms_lesjak2017_open_ms_data": "ms_lesjak",
    "brats2015_deepmedic_examples": "deepmedic",
    "brats2015": "deepmedic",
    "brats2018_brainy_samples": "brats",
    "ixi_t1_2mm_cbica_ccl_nmf": "ixi",
    "msd": "decathlon",
    "nnunet": "decathlon",
    "openmind": "nnssl",
    "tsv": "csv",
}
_MAX_SCAN = 2000


def _detect_file(p: Path) -> str:
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        columns = {c.lower() for c in read_table(p)[0]}
        if {"subject", "modality", "path"} <= columns:
            return "csv"
        raise LayoutError(f"{p}: a table without subject, modality, path columns is not a manifest")
    if suffix == ".json":
        try:
            meta = json.loads(p.read_text())
        except (OSError, ValueError) as err:
            raise LayoutError(f"{p}: cannot parse the JSON ({err})") from err
        if isinstance(meta, dict) and "datasets" in meta:
            return "nnssl"
        if isinstance(meta, dict) and ("modality" in meta or "channel_names" in meta):
            return "decathlon"
        raise LayoutError(
            f"{p}: JSON that is neither an nnssl pretrain_data.json nor a Decathlon dataset.json"
        )
    raise LayoutError(
        f"{p}: cannot tell the layout of a {suffix or 'extension-less'} file; pass layout=..."
    )


def detect_layout(path: str | Path) -> str:
    """Tell which layout a folder or manifest file has.

    Files: ``.csv``/``.tsv`` with ``subject, modality, path`` columns -> ``"csv"``; a JSON
    with ``datasets`` -> ``"nnssl"``, with ``modality``/``channel_names`` -> ``"decathlon"``.
    Folders, in this order: ``dataset.json`` -> ``"decathlon"``; ``pretrain_data.json`` ->
    ``"nnssl"``; ``dataset_description.json`` or ``sub-*`` folders -> ``"bids"``; ``data.csv``
    beside ``TCGA_*`` case folders -> ``"lgg"``; ``MNI/patientNN`` folders -> ``"ms_lesjak"``;
    otherwise the first NIfTI names found (up to 2000 files) decide: ``*_subtrMeanDivStd`` ->
    ``"deepmedic"``, ``IXI<nnn>-<site>-<nnnn>-...`` -> ``"ixi"``, ``<case>_<modality>`` ->
    ``"brats"``.

    Raises:
        LayoutError: Nothing recognisable (the message lists the layouts).
    """
    p = Path(path)
    if p.is_file():
        return _detect_file(p)
    if not p.is_dir():
        raise LayoutError(f"{p}: no such file or folder")
    if (p / "dataset.json").is_file():
        return "decathlon"
    if (p / "pretrain_data.json").is_file():
        return "nnssl"
    children = sorted(d.name for d in p.iterdir() if d.is_dir())
    if (p / "dataset_description.json").is_file() or any(re.match(r"^sub-", d) for d in children):
        return "bids"
    if (p / "data.csv").is_file() and any(d.startswith("TCGA_") for d in children):
        return "lgg"
    for mni in (p / "cross_sectional" / "MNI", p / "MNI", p):
        if mni.is_dir() and any(
            re.match(r"^patient\d+$", d.name) for d in mni.iterdir() if d.is_dir()
        ):
            return "ms_lesjak"
    for n, file in enumerate(walk_files(p)):
        if n >= _MAX_SCAN:
            break
        stem = nifti_stem(file.name)
        if stem is None:
            continue
        if stem.endswith("_subtrMeanDivStd"):
            return "deepmedic"
        if IXI_RE.match(stem):
            return "ixi"
        if BRATS_RE.match(file.name):
            return "brats"
    raise LayoutError(
        f"{p}: cannot detect the layout; pass layout= one of {', '.join(READERS)} "
        "(or write a CSV manifest with subject, modality, path columns)"
    )


def read_subjects(path: str | Path, layout: str = "auto", **kwargs: Any) -> list[Subject]:
    """Read the subjects of a folder or manifest file.

    Args:
        path: A folder or a manifest file (CSV/TSV, Decathlon ``dataset.json``, nnssl JSON).
        layout: ``"auto"`` (see :func:`detect_layout`), ``"brats"``, ``"decathlon"``,
            ``"bids"``, ``"nnssl"``, ``"csv"``, or a real-set reader: ``"lgg"``,
            ``"ms_lesjak"``, ``"deepmedic"``, ``"ixi"`` (the folder names in ``shared/data``,
            e.g. ``"tcga_lgg_buda2019"``, are accepted too).
        **kwargs: Passed to the layout's reader (e.g. ``labels_csv`` for ``read_brats``).

    Returns:
        The subjects, sorted by (dataset, subject_id, session).

    Raises:
        LayoutError: Unknown layout name or undetectable layout.
        EmptyDatasetError: No subject.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "m.csv").write_text("subject,modality,path,age\\ns1,T1w,a.nii.gz,40\\n")
    >>> [(s.subject_id, s.modalities, s.labels) for s in read_subjects(root / "m.csv")]
    [('s1', ('t1',), {'age': 40})]
    """
    name = detect_layout(path) if layout == "auto" else ALIASES.get(layout.lower(), layout.lower())
    if name not in READERS:
        raise LayoutError(
            f"unknown layout {layout!r}; known: auto, {', '.join(READERS)}, {', '.join(ALIASES)}"
        )
    return READERS[name](path, **kwargs)
