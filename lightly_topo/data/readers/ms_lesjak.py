"""Reader of the Lesjak et al. 2018 multiple-sclerosis set (open_ms_data, MNI space)."""

from __future__ import annotations

import re
from pathlib import Path

from lightly_topo.data.errors import LayoutError
from lightly_topo.data.modalities import normalize_modality
from lightly_topo.data.readers._common import add_image, label_table, nifti_stem, require_subjects
from lightly_topo.data.types import ModalityFile, Subject

_PATIENT = re.compile(r"^patient(\d+)$")


def _mni_folder(root: Path) -> Path:
    for candidate in (root / "cross_sectional" / "MNI", root / "MNI", root):
        if candidate.is_dir() and any(_PATIENT.match(d.name) for d in candidate.iterdir()):
            return candidate
    raise LayoutError(f"{root}: no MNI/patientNN folders (ms_lesjak2017_open_ms_data layout)")


def read_ms_lesjak(path: str | Path, include_without_images: bool = False) -> list[Subject]:
    """Read ``ms_lesjak2017_open_ms_data``: ``cross_sectional/MNI/patientNN/*.nii.gz``.

    Images are ``{FLAIR,T1,T1POST,T2}_N4_..._regtoMNI.nii.gz`` (T1POST is the
    gadolinium T1, ``t1ce``); ``GOLD_STANDARD_*`` is the consensus lesion mask, used as the label
    map. Only 3 patients have images in this copy; by default the others (masks only) are left
    out. ``cross_sectional/patient_info.csv`` gives the labels ``age``, ``sex``, ``ms_type``,
    ``edss``, ``criteria`` (``N/A`` left out).

    Lesjak Z et al. Neuroinformatics 16(1):51-63 (2018), CC BY; MNI processing by J. Muschelli.

    Args:
        path: The ``ms_lesjak2017_open_ms_data`` folder (or its ``cross_sectional`` or ``MNI``
            folder).
        include_without_images: Also return the patients that have only a lesion mask.
    """
    root = Path(path)
    mni = _mni_folder(root)
    info = mni.parent / "patient_info.csv"
    table = {}
    if info.is_file():
        table = {
            f"patient{int(k):02d}": v
            for k, v in label_table(info, "patient_id").items()
            if k.isdigit()
        }
    subjects = []
    for folder in sorted(d for d in mni.iterdir() if d.is_dir() and _PATIENT.match(d.name)):
        subject = Subject(
            folder.name, {}, labels=dict(table.get(folder.name, {})), dataset="ms_lesjak2017"
        )
        for file in sorted(folder.iterdir()):
            stem = nifti_stem(file.name)
            if stem is None:
                continue
            if stem.upper().startswith("GOLD_STANDARD"):
                subject.label_map = file
                continue
            modality = normalize_modality(stem.split("_")[0], str(file))
            add_image(subject.images, ModalityFile(modality, file), subject.key)
        if subject.images or include_without_images:
            subjects.append(subject)
    return require_subjects(subjects, mni, "ms_lesjak (MNI/patientNN)")
