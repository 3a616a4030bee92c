"""Anatomy from real label maps (SynthSeg style): FreeSurfer ids -> synthetic structures.

A label map (e.g. the 20 whole-head maps of SynthSeg's ``training_label_maps``, 256³ at
1 mm, FreeSurfer ``aseg`` ids plus extra-cerebral classes >= 500) is reoriented to RAS+,
mapped onto :data:`~lightly_topo.data.synthetic.structures.STRUCTURES`, cropped to the head
and kept in memory. A subject is drawn by sampling it (nearest neighbour) at the deformed
template coordinates of the output grid, centred on the centre of the brain's bounding box.

Reference: Billot et al., "SynthSeg: Segmentation of brain MRI scans of any contrast and
resolution without retraining", Medical Image Analysis 86:102789 (2023).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from torch import Tensor

from lightly_topo.data.errors import CorruptFileError, EmptyDatasetError, MissingFileError
from lightly_topo.data.synthetic.structures import STRUCTURES

_S = STRUCTURES

#: FreeSurfer label id -> synthetic structure id. Ids >= 500 that are not listed (the
#: SynthSeg authors' unnamed extra-cerebral classes) map to ``soft_tissue``; other unlisted
#: ids raise an error.
FREESURFER_TO_STRUCTURE: dict[int, int] = {
    0: _S["background"],
    2: _S["left_cerebral_white_matter"],
    3: _S["left_cerebral_cortex"],
    4: _S["left_lateral_ventricle"],
    5: _S["left_lateral_ventricle"],  # inferior lateral ventricle
    7: _S["left_cerebellum_white_matter"],
    8: _S["left_cerebellum_cortex"],
    10: _S["left_thalamus"],
    11: _S["left_caudate"],
    12: _S["left_putamen"],
    13: _S["left_pallidum"],
    14: _S["third_fourth_ventricles"],
    15: _S["third_fourth_ventricles"],
    16: _S["brain_stem"],
    17: _S["left_hippocampus_amygdala"],
    18: _S["left_hippocampus_amygdala"],
    24: _S["csf"],
    25: _S["left_cerebral_white_matter"],  # left lesion
    26: _S["left_ventral_deep_grey"],  # accumbens
    28: _S["left_ventral_deep_grey"],  # ventral DC
    30: _S["csf"],  # vessel
    31: _S["left_lateral_ventricle"],  # choroid plexus
    41: _S["right_cerebral_white_matter"],
    42: _S["right_cerebral_cortex"],
    43: _S["right_lateral_ventricle"],
    44: _S["right_lateral_ventricle"],
    46: _S["right_cerebellum_white_matter"],
    47: _S["right_cerebellum_cortex"],
    49: _S["right_thalamus"],
    50: _S["right_caudate"],
    51: _S["right_putamen"],
    52: _S["right_pallidum"],
    53: _S["right_hippocampus_amygdala"],
    54: _S["right_hippocampus_amygdala"],
    57: _S["right_cerebral_white_matter"],  # right lesion
    58: _S["right_ventral_deep_grey"],
    60: _S["right_ventral_deep_grey"],
    62: _S["csf"],
    63: _S["right_lateral_ventricle"],
    72: _S["third_fourth_ventricles"],
    77: _S["left_cerebral_white_matter"],  # WM hypointensities (side fixed below)
    85: _S["left_cerebral_white_matter"],  # optic chiasm (side fixed below)
    136: _S["left_lateral_ventricle"],  # SynthSeg: choroid-plexus-like, beside ventricle 4
    137: _S["left_lateral_ventricle"],  # beside the inferior lateral ventricle 5
    163: _S["right_lateral_ventricle"],
    164: _S["right_lateral_ventricle"],
    251: _S["left_cerebral_white_matter"],  # corpus callosum parts (side fixed below)
    252: _S["left_cerebral_white_matter"],
    253: _S["left_cerebral_white_matter"],
    254: _S["left_cerebral_white_matter"],
    255: _S["left_cerebral_white_matter"],
    506: _S["eye"],
    512: _S["brain_stem"],  # spinal cord
    515: _S["skull"],
    516: _S["skull"],
}

#: FreeSurfer ids on the midline whose side is decided by the voxel's position.
_MIDLINE_WHITE_MATTER = (77, 85, 251, 252, 253, 254, 255)

#: FreeSurfer ids whose bounding box defines the centre of the brain.
_CENTRE_IDS = (2, 3, 7, 8, 41, 42, 46, 47)


@dataclass(frozen=True)
class LabelMapSeed:
    """A real label map mapped onto the synthetic structures, cropped to the head.

    Attributes:
        path: The file it was read from.
        structures: uint8 tensor (X, Y, Z) of structure ids, RAS+ axes, 1 voxel = ``spacing``.
        spacing: Voxel size in mm along each axis.
        centre_voxel: Coordinates (voxels, in ``structures``) of the brain's bounding-box
            centre, which becomes the centre of the field of view.
    """

    path: Path
    structures: Tensor
    spacing: tuple[float, float, float]
    centre_voxel: tuple[float, float, float]


def list_label_maps(label_maps: str | Path | Sequence[str | Path]) -> list[Path]:
    """The label-map files named by a folder or a list of files.

    Args:
        label_maps: A folder (its ``*.nii`` and ``*.nii.gz`` files, sorted by name) or a
            list of files.

    Returns:
        The files, in a fixed order.

    Raises:
        MissingFileError: If the folder or a listed file does not exist.
        EmptyDatasetError: If no label map is found.
    """
    if isinstance(label_maps, (str, Path)):
        folder = Path(label_maps)
        if not folder.exists():
            raise MissingFileError(
                f"label_maps folder {folder} does not exist; pass a folder of NIfTI label maps "
                f"(e.g. ../shared/data/synthseg_training_label_maps) or a list of files"
            )
        if folder.is_file():
            files = [folder]
        else:
            files = sorted(
                p for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")) and p.is_file()
            )
    else:
        files = [Path(p) for p in label_maps]
        for path in files:
            if not path.is_file():
                raise MissingFileError(f"label map {path} (in label_maps) does not exist")
    if not files:
        raise EmptyDatasetError(
            f"label_maps {label_maps!r} holds no NIfTI label map (*.nii or *.nii.gz)"
        )
    return files


def _member(labels: np.ndarray, ids: list[int], size: int) -> np.ndarray:
    """Bool mask of the voxels whose (non-negative) label is one of ``ids``."""
    lut = np.zeros(size, dtype=bool)
    lut[ids] = True
    return lut[labels]


def _bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(start, stop)`` voxel indices of the bounding box of a non-empty 3D mask."""
    start, stop = [], []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        start.append(hit[0])
        stop.append(hit[-1] + 1)
    return np.asarray(start), np.asarray(stop)


@functools.lru_cache(maxsize=32)
def load_label_map(path: Path) -> LabelMapSeed:
    """Read a label map, map it onto the synthetic structures and crop it (cached).

    Args:
        path: A NIfTI file of integer labels (FreeSurfer ids, optionally SynthSeg's
            extra-cerebral ids >= 500).

    Returns:
        The :class:`LabelMapSeed`.

    Raises:
        CorruptFileError: If the file cannot be decoded, is not 3D, or holds label ids
            below 500 that are not FreeSurfer ids listed in :data:`FREESURFER_TO_STRUCTURE`.
    """
    try:
        image = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asarray(image.dataobj)
        labels = (data if data.dtype.kind in "iu" else np.rint(data)).astype(np.int32)
    except Exception as error:  # nibabel raises many types on a bad file
        raise CorruptFileError(f"cannot read label map {path}: {error}") from error
    if labels.ndim == 4 and labels.shape[3] == 1:
        labels = labels[..., 0]
    if labels.ndim != 3:
        raise CorruptFileError(
            f"label map {path} has shape {labels.shape}; a 3D label volume is expected"
        )
    if labels.min() < 0:
        raise CorruptFileError(f"label map {path} holds negative label ids")
    counts = np.bincount(labels.ravel())
    present = np.flatnonzero(counts)
    unknown = [int(v) for v in present if v not in FREESURFER_TO_STRUCTURE and v < 500]
    if unknown:
        raise CorruptFileError(
            f"label map {path} holds label ids {unknown} that are neither FreeSurfer ids known "
            f"to the generator ({sorted(FREESURFER_TO_STRUCTURE)}) nor extra-cerebral ids >= 500"
        )
    lut = np.full(counts.size, _S["soft_tissue"], dtype=np.uint8)
    for fs_id, structure in FREESURFER_TO_STRUCTURE.items():
        if fs_id < lut.size:
            lut[fs_id] = structure
    structures = lut[labels]

    brain_ids = [i for i in _CENTRE_IDS if i < counts.size and counts[i] > 0]
    brain = _member(labels, brain_ids, counts.size) if brain_ids else labels > 0
    if not brain.any():
        raise CorruptFileError(f"label map {path} is empty (all voxels are 0)")
    low, high = _bounding_box(brain)
    centre = (low + high - 1) / 2.0

    midline_ids = [i for i in _MIDLINE_WHITE_MATTER if i < counts.size and counts[i] > 0]
    if midline_ids:
        midline = _member(labels, midline_ids, counts.size)
        right = np.zeros_like(midline)
        right[int(np.ceil(centre[0])) :] = True
        structures[midline & right] = _S["right_cerebral_white_matter"]

    start, stop = _bounding_box(structures > 0)
    cropped = structures[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]]
    spacing = tuple(float(v) for v in nib.affines.voxel_sizes(image.affine))
    return LabelMapSeed(
        path=Path(path),
        structures=torch.from_numpy(np.ascontiguousarray(cropped)),
        spacing=(spacing[0], spacing[1], spacing[2]),
        centre_voxel=(
            float(centre[0] - start[0]),
            float(centre[1] - start[1]),
            float(centre[2] - start[2]),
        ),
    )


def sample_label_map(seed: LabelMapSeed, q: Tensor) -> Tensor:
    """Nearest-neighbour lookup of a label map at template coordinates.

    Args:
        seed: The label map.
        q: Template coordinates (mm, relative to the brain centre), float32 (3, D, H, W).

    Returns:
        int64 (D, H, W) structure ids; points outside the map are background.
    """
    volume = seed.structures
    index = []
    inside = torch.ones(q.shape[1:], dtype=torch.bool)
    for axis in range(3):
        i = torch.round(q[axis] / seed.spacing[axis] + seed.centre_voxel[axis]).long()
        inside &= (i >= 0) & (i < volume.shape[axis])
        index.append(i.clamp(0, volume.shape[axis] - 1))
    values = volume[index[0], index[1], index[2]].long()
    return torch.where(inside, values, torch.zeros_like(values))
