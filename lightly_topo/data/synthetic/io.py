"""Write synthetic subjects as a BraTS-2018-named NIfTI folder, for code that reads files."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from lightly_topo.data.errors import LayoutError

if TYPE_CHECKING:
    from lightly_topo.data.synthetic.dataset import SyntheticBrains

#: Name of the subject-labels table written at the root of the folder.
LABELS_CSV = "labels.csv"


def write_brats_folder(
    dataset: SyntheticBrains,
    root: str | Path,
    indices: Iterable[int] | None = None,
    anatomy: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write subjects as ``<root>/<case>/<case>_{t1,t1ce,t2,flair,pd,seg}.nii.gz``.

    The images are the raw contrasts (float32, about [0, 1]; not z-scored, as a scanner's
    files are not), on the dataset's grid with its RAS+ affine. ``<case>_seg.nii.gz``
    (uint8) holds the lesion labels with the synthetic ids (0 background, 1 necrotic core,
    2 oedema, 3 enhancing, 4 white-matter hyperintensity; BraTS itself writes enhancing as
    4); it is written only when the dataset has lesions. ``<root>/labels.csv`` has one row
    per subject: ``subject_id`` then the subject labels.

    Args:
        dataset: The synthetic dataset.
        root: Folder to write into (created if absent).
        indices: The items to write; default all.
        anatomy: Also write ``<case>_anatomy.nii.gz`` (uint8 structure ids, see
            :data:`~lightly_topo.data.synthetic.structures.STRUCTURES`).
        overwrite: Replace existing case files instead of raising.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        LayoutError: If a case folder already exists and ``overwrite`` is false.

    >>> import tempfile
    >>> from lightly_topo.data.synthetic import SyntheticBrains
    >>> root = write_brats_folder(SyntheticBrains(1, size=16, modalities=("t1",)), tempfile.mkdtemp())
    >>> sorted(p.name for p in (root / "synth-0000").iterdir())
    ['synth-0000_seg.nii.gz', 'synth-0000_t1.nii.gz']
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(len(dataset)) if indices is None else indices:
        subject = dataset.generate(index)
        case = subject.subject_id
        folder = root / case
        if folder.exists() and not overwrite:
            raise LayoutError(
                f"case folder {folder} already exists; pass overwrite=True or use an empty root"
            )
        folder.mkdir(exist_ok=True)
        affine = subject.affine.numpy()
        for name, image in subject.images.items():
            volume = image[0].numpy().astype(np.float32)
            nib.save(nib.Nifti1Image(volume, affine), folder / f"{case}_{name}.nii.gz")
        if dataset.lesions:
            seg = subject.lesion_map[0].numpy().astype(np.uint8)
            nib.save(nib.Nifti1Image(seg, affine), folder / f"{case}_seg.nii.gz")
        if anatomy:
            structures = subject.anatomy[0].numpy().astype(np.uint8)
            nib.save(nib.Nifti1Image(structures, affine), folder / f"{case}_anatomy.nii.gz")
        rows.append({"subject_id": case, **subject.labels})
    if rows:
        with open(root / LABELS_CSV, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return root
