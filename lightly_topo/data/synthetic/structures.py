"""Label ids of the synthetic anatomy (structures and tissue classes) and of its lesions.

Every synthetic subject has an anatomy map of *structure* ids (:data:`STRUCTURES`), whether
it comes from the procedural model or from a real label map. Each structure belongs to one
*tissue* class (:data:`TISSUES`), which decides its contrast in every modality. Lesions live
in a separate voxel label map with the ids of :data:`LESION_LABELS`.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Structure name -> id in the anatomy map of :meth:`SyntheticBrains.generate`.
STRUCTURES: dict[str, int] = {
    "background": 0,
    "soft_tissue": 1,
    "skull": 2,
    "eye": 3,
    "csf": 4,
    "left_cerebral_cortex": 5,
    "right_cerebral_cortex": 6,
    "left_cerebral_white_matter": 7,
    "right_cerebral_white_matter": 8,
    "left_lateral_ventricle": 9,
    "right_lateral_ventricle": 10,
    "third_fourth_ventricles": 11,
    "left_thalamus": 12,
    "right_thalamus": 13,
    "left_caudate": 14,
    "right_caudate": 15,
    "left_putamen": 16,
    "right_putamen": 17,
    "left_pallidum": 18,
    "right_pallidum": 19,
    "left_hippocampus_amygdala": 20,
    "right_hippocampus_amygdala": 21,
    "left_ventral_deep_grey": 22,
    "right_ventral_deep_grey": 23,
    "left_cerebellum_cortex": 24,
    "right_cerebellum_cortex": 25,
    "left_cerebellum_white_matter": 26,
    "right_cerebellum_white_matter": 27,
    "brain_stem": 28,
}

#: Tissue class name -> id. The tissue decides the contrast of a structure.
TISSUES: dict[str, int] = {
    "background": 0,
    "csf": 1,
    "grey_matter": 2,
    "white_matter": 3,
    "deep_grey_matter": 4,
    "bone": 5,
    "soft_tissue": 6,
}

_TISSUE_OF_STRUCTURE: dict[str, str] = {
    "background": "background",
    "soft_tissue": "soft_tissue",
    "skull": "bone",
    "eye": "csf",
    "csf": "csf",
    "cerebral_cortex": "grey_matter",
    "cerebral_white_matter": "white_matter",
    "lateral_ventricle": "csf",
    "third_fourth_ventricles": "csf",
    "thalamus": "deep_grey_matter",
    "caudate": "deep_grey_matter",
    "putamen": "deep_grey_matter",
    "pallidum": "deep_grey_matter",
    "hippocampus_amygdala": "grey_matter",
    "ventral_deep_grey": "deep_grey_matter",
    "cerebellum_cortex": "grey_matter",
    "cerebellum_white_matter": "white_matter",
    "brain_stem": "white_matter",
}


def _strip_side(name: str) -> str:
    for side in ("left_", "right_"):
        if name.startswith(side):
            return name[len(side) :]
    return name


#: Structure id -> tissue id.
STRUCTURE_TISSUE: dict[int, int] = {
    sid: TISSUES[_TISSUE_OF_STRUCTURE[_strip_side(name)]] for name, sid in STRUCTURES.items()
}

#: Lesion label name -> id in the item's ``label_map``.
LESION_LABELS: dict[str, int] = {
    "background": 0,
    "necrotic_core": 1,
    "oedema": 2,
    "enhancing": 3,
    "wm_hyperintensity": 4,
}

#: The cerebral structures of each hemisphere (where lesions of that side may lie).
HEMISPHERE_STRUCTURES: dict[str, tuple[int, ...]] = {
    side: tuple(
        STRUCTURES[f"{side}_{name}"]
        for name in (
            "cerebral_cortex",
            "cerebral_white_matter",
            "thalamus",
            "caudate",
            "putamen",
            "pallidum",
            "hippocampus_amygdala",
            "ventral_deep_grey",
        )
    )
    for side in ("left", "right")
}

#: Structures inside the skull (brain and CSF): the foreground of skull-stripped images.
INTRACRANIAL_STRUCTURES: tuple[int, ...] = tuple(
    sid
    for name, sid in STRUCTURES.items()
    if name not in ("background", "soft_tissue", "skull", "eye")
)

_TISSUE_LUT = torch.tensor([STRUCTURE_TISSUE[i] for i in range(len(STRUCTURES))], dtype=torch.int64)


def tissue_of(anatomy: Tensor) -> Tensor:
    """Map an anatomy map of structure ids to tissue ids.

    Args:
        anatomy: Integer tensor of structure ids (:data:`STRUCTURES`), any shape.

    Returns:
        An int64 tensor of the same shape with tissue ids (:data:`TISSUES`).

    >>> tissue_of(torch.tensor([0, 4, 7, 12])).tolist()
    [0, 1, 3, 4]
    """
    return _TISSUE_LUT[anatomy.long()]


def isin(volume: Tensor, ids: tuple[int, ...] | list[int]) -> Tensor:
    """Bool mask of the voxels of an integer ``volume`` whose value is one of ``ids``.

    >>> isin(torch.tensor([0, 3, 5]), (3, 4)).tolist()
    [False, True, False]
    """
    size = max(int(volume.max()) if volume.numel() else 0, *ids) + 1
    lut = torch.zeros(size, dtype=torch.bool)
    lut[list(ids)] = True
    return lut[volume.long()]
