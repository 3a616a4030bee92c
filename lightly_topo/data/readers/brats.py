"""Reader of BraTS folders (2018-2021 and 2023 naming)."""

from __future__ import annotations

import re
from pathlib import Path

from lightly_topo.data.errors import ManifestError
from lightly_topo.data.modalities import normalize_modality
from lightly_topo.data.readers._common import (
    add_image,
    label_table,
    require_dir,
    require_subjects,
    walk_files,
)
from lightly_topo.data.types import ModalityFile, Subject

#: ``<case>_<suffix>.nii[.gz]`` (2018-2021) or ``<case>-<suffix>.nii[.gz]`` (2023).
BRATS_RE = re.compile(
    r"^(?P<case>.+)[_-](?P<suffix>t1ce|t1c|t1n|t1|t2w|t2f|t2|flair|pd|seg)\.nii(?:\.gz)?$",
    re.IGNORECASE,
)


def read_brats(
    path: str | Path,
    labels_csv: str | Path | None = None,
    id_column: str = "BraTS_ID",
) -> list[Subject]:
    """Read a BraTS folder: one folder per case, one file per modality.

    File names are ``<case>_{t1,t1ce,t2,flair,seg}.nii.gz`` (BraTS 2018-2021) or
    ``<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz`` (BraTS 2023); ``seg`` is the label map (absent in
    validation sets). A ``<case>_pd.nii.gz`` file (not part of BraTS, written by
    :meth:`lightly_topo.data.SyntheticBrains.save`) is read as proton density. Cases are found at any depth (e.g. ``HGG/<case>/`` in BraTS 2018-2019;
    then the parent folder's name ``HGG``/``LGG`` becomes the subject label ``grade``). A case
    without some modality files simply lacks those modalities.

    Args:
        path: The folder holding the cases.
        labels_csv: Optional table of subject-level labels (e.g. BraTS ``survival_info.csv``).
        id_column: Its column holding the case name.

    Returns:
        One :class:`~lightly_topo.data.Subject` per case, sorted by case name.

    Raises:
        LayoutError: ``path`` is not a folder.
        EmptyDatasetError: No BraTS-named file found.
        ManifestError: Two files of one case map to the same modality, or one case name in
            two folders.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "BraTS-GLI-00000-000").mkdir()
    >>> for s in ("t1n", "t2f", "seg"):
    ...     _ = (root / "BraTS-GLI-00000-000" / f"BraTS-GLI-00000-000-{s}.nii.gz").write_bytes(b"")
    >>> [(s.subject_id, s.modalities, s.label_map.name) for s in read_brats(root)]
    [('BraTS-GLI-00000-000', ('t1', 'flair'), 'BraTS-GLI-00000-000-seg.nii.gz')]
    """
    root = require_dir(path, "read_brats")
    cases: dict[str, Subject] = {}
    folders: dict[str, Path] = {}
    for file in walk_files(root):
        m = BRATS_RE.match(file.name)
        if m is None:
            continue
        case, suffix = m.group("case"), m.group("suffix").lower()
        if case in folders and folders[case] != file.parent:
            raise ManifestError(
                f"case {case!r} appears in two folders: {folders[case]} and {file.parent}"
            )
        folders[case] = file.parent
        subject = cases.get(case)
        if subject is None:
            subject = cases[case] = Subject(case, {}, dataset="brats")
            grade = file.parent.parent.name if file.parent != root else ""
            if grade.upper() in ("HGG", "LGG"):
                subject.labels["grade"] = grade.upper()
        if suffix == "seg":
            if subject.label_map is not None:
                raise ManifestError(
                    f"case {case!r} has two label maps: {subject.label_map} and {file}"
                )
            subject.label_map = file
            continue
        modality = normalize_modality(suffix, str(file))
        add_image(subject.images, ModalityFile(modality, file), case)
    subjects = [s for s in cases.values() if s.images]
    if labels_csv is not None:
        table = label_table(Path(labels_csv), id_column)
        for s in subjects:
            s.labels.update(table.get(s.subject_id, {}))
    return require_subjects(subjects, root, "brats (<case>_<modality>.nii.gz files)")
