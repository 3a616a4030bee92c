"""Reader of the BraTS 2015 examples shipped with DeepMedic."""

from __future__ import annotations

from pathlib import Path

from lightly_topo.data.modalities import normalize_modality
from lightly_topo.data.readers._common import (
    add_image,
    nifti_stem,
    require_dir,
    require_subjects,
    walk_files,
)
from lightly_topo.data.types import ModalityFile, Subject

_SPLITS = ("train", "validation", "test")


def read_deepmedic(path: str | Path) -> list[Subject]:
    """Read ``brats2015_deepmedic_examples``: ``<split>/<case>/{Flair,T1c}_subtrMeanDivStd.nii.gz``.

    Images are already z-scored inside the brain (background at a constant minimum: use
    ``background="corner"`` in :class:`~lightly_topo.data.MultiModalVolumeDataset`).
    ``OTMultiClass`` is the label map (BraTS 2012-2015 labels 0-4); ``brainmask`` is not read.
    The source's split (``train``/``validation``/``test``) becomes the label ``split``.

    Menze BH et al., IEEE TMI 34(10):1993-2024 (2015); modified by K. Kamnitsas (DeepMedic).
    CC BY-NC-SA 3.0 CH (non-commercial).

    Args:
        path: The ``brats2015_deepmedic_examples`` folder (or any folder above the cases).
    """
    root = require_dir(path, "read_deepmedic")
    cases: dict[Path, Subject] = {}
    for file in walk_files(root):
        stem = nifti_stem(file.name)
        if stem is None or not (stem.endswith("_subtrMeanDivStd") or stem == "OTMultiClass"):
            continue
        subject = cases.get(file.parent)
        if subject is None:
            split = file.parent.parent.name
            labels = {"split": split} if split in _SPLITS else {}
            subject = cases[file.parent] = Subject(
                file.parent.name, {}, labels=dict(labels), dataset="brats2015"
            )
        if stem == "OTMultiClass":
            subject.label_map = file
        else:
            modality = normalize_modality(stem, str(file))
            add_image(subject.images, ModalityFile(modality, file), subject.key)
    return require_subjects(
        [s for s in cases.values() if s.images], root, "deepmedic (*_subtrMeanDivStd)"
    )
