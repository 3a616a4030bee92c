"""Reader of the TCGA lower-grade-glioma set (Buda et al. 2019), as in ``shared/data``."""

from __future__ import annotations

import re
from pathlib import Path

from lightly_topo.data.readers._common import label_table
from lightly_topo.data.readers.brats import read_brats
from lightly_topo.data.types import Subject

_DATE = re.compile(r"_\d{8}$")


def read_lgg(path: str | Path, labels_csv: str | Path | None = None) -> list[Subject]:
    """Read ``tcga_lgg_buda2019``: BraTS-like case folders plus ``data.csv`` labels.

    Cases are ``<case>/<case>_{t1,flair,t1ce,seg}.nii.gz`` with ``<case>`` like
    ``TCGA_CS_4942_19970222``; ``seg`` is the FLAIR-abnormality mask. 6 patients lack one or
    two sequences: those modalities are absent (never filled in). ``data.csv`` (column
    ``Patient`` = case name without its ``_YYYYMMDD`` date) gives the subject labels
    (genomic clusters, ``neoplasm_histologic_grade``, ``histological_type``, ``gender``,
    ``age_at_initial_pathologic``, ``death01``, ...; empty cells left out).

    Buda M, Saha A, Mazurowski MA. Computers in Biology and Medicine 109:218-225 (2019);
    TCIA TCGA-LGG. Licence CC BY-NC-SA 4.0 (non-commercial).

    Args:
        path: The ``tcga_lgg_buda2019`` folder.
        labels_csv: The label table (default ``<path>/data.csv`` where it exists).
    """
    root = Path(path)
    subjects = read_brats(root)
    table_path = Path(labels_csv) if labels_csv is not None else root / "data.csv"
    table = label_table(table_path, "Patient") if table_path.is_file() else {}
    for s in subjects:
        s.dataset = "tcga_lgg_buda2019"
        s.labels.update(table.get(_DATE.sub("", s.subject_id), {}))
    return subjects
