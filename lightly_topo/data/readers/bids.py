"""Reader of BIDS datasets (anatomical images)."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

from lightly_topo.data.errors import UnknownModalityError
from lightly_topo.data.modalities import normalize_modality
from lightly_topo.data.readers._common import (
    add_image,
    label_table,
    nifti_stem,
    require_dir,
    require_subjects,
)
from lightly_topo.data.types import ModalityFile, Subject


def read_bids(
    path: str | Path,
    datatype: str = "anat",
    on_unknown: str = "skip",
) -> list[Subject]:
    """Read a BIDS dataset: ``sub-*/[ses-*/]anat/*_<suffix>.nii[.gz]``.

    The suffix (``T1w``, ``T2w``, ``FLAIR``, ``PDw``, ``T2starw``, ...) is the modality. One
    :class:`~lightly_topo.data.Subject` per subject and session (``subject_id="sub-01"``,
    ``session="ses-01"`` or ``None``). ``participants.tsv`` columns become subject labels
    (``n/a`` left out). When a session has several files for one modality (``run-1``,
    ``run-2``, ``acq-...``), the first in name order is used and one warning says how many
    were passed over.

    Args:
        path: The dataset root (holding ``sub-*`` folders).
        datatype: The BIDS datatype folder to read.
        on_unknown: ``"skip"`` (default): files whose suffix is not an MRI contrast of the
            vocabulary (``defacemask``, ``T1map``, ``angio``, ...) are left out, with one
            warning listing the suffixes; ``"raise"``: raise
            :class:`~lightly_topo.data.errors.UnknownModalityError`.

    Raises:
        LayoutError: ``path`` is not a folder.
        EmptyDatasetError: No subject with images.
    """
    root = require_dir(path, "read_bids")
    labels = {}
    participants = root / "participants.tsv"
    if participants.is_file():
        labels = label_table(participants, "participant_id")
    skipped: Counter[str] = Counter()
    duplicates = 0
    subjects = []
    for sub_dir in sorted(root.glob("sub-*")):
        if not sub_dir.is_dir():
            continue
        sessions = sorted(d for d in sub_dir.glob("ses-*") if d.is_dir()) or [sub_dir]
        for ses_dir in sessions:
            folder = ses_dir / datatype
            if not folder.is_dir():
                continue
            session = ses_dir.name if ses_dir != sub_dir else None
            subject = Subject(
                sub_dir.name,
                {},
                session=session,
                labels=dict(labels.get(sub_dir.name, {})),
                dataset=root.name,
            )
            for file in sorted(folder.iterdir()):
                stem = nifti_stem(file.name)
                if stem is None:
                    continue
                suffix = stem.rsplit("_", 1)[-1]
                try:
                    modality = normalize_modality(suffix, str(file))
                except UnknownModalityError:
                    if on_unknown == "raise":
                        raise
                    skipped[suffix] += 1
                    continue
                if not add_image(
                    subject.images, ModalityFile(modality, file), subject.key, on_duplicate="first"
                ):
                    duplicates += 1
            if subject.images:
                subjects.append(subject)
    if skipped:
        listing = ", ".join(f"{k} ({n})" for k, n in sorted(skipped.items()))
        warnings.warn(
            f"{root}: left out files with suffixes outside the modality vocabulary: {listing}",
            stacklevel=2,
        )
    if duplicates:
        warnings.warn(
            f"{root}: {duplicates} file(s) repeat a modality within a session (runs/acquisitions); "
            "the first file in name order was used",
            stacklevel=2,
        )
    return require_subjects(subjects, root, "bids (sub-*/[ses-*/]anat/*.nii.gz)")
