"""Parcellation targets of the synthetic anatomy: brain structures, sides kept, plus lesions.

The structures of :data:`~lightly_topo.data.synthetic.structures.STRUCTURES` are grouped into
the classes of :data:`PARCELLATION_CLASSES`: each side of the cerebrum kept apart (left and
right thalamus are two classes, told apart only by position), extra-cerebral tissue and CSF
merged into the background, cerebellar cortex and white matter merged per side, and one
``lesion`` class (every lesion label) that overrides the structure underneath. Deep grey
nuclei share one tissue contrast: only their position and neighbourhood separate them, the
anatomical prior a dense self-supervised method claims to learn.

>>> import torch
>>> anatomy = torch.tensor([0, 12, 13, 7])
>>> [PARCELLATION_CLASSES[int(c)] for c in parcellation_map(anatomy, torch.tensor([0, 0, 0, 4]))]
['background', 'left_thalamus', 'right_thalamus', 'lesion']
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightly_topo.data.synthetic.structures import STRUCTURES

_SIDED = (
    "cerebral_cortex",
    "cerebral_white_matter",
    "lateral_ventricle",
    "thalamus",
    "caudate",
    "putamen",
    "pallidum",
    "hippocampus_amygdala",
    "ventral_deep_grey",
    "cerebellum",
)

#: Class names, index = class id of :func:`parcellation_map`.
PARCELLATION_CLASSES: tuple[str, ...] = (
    "background",
    *(f"{side}_{name}" for name in _SIDED for side in ("left", "right")),
    "third_fourth_ventricles",
    "brain_stem",
    "lesion",
)

#: The deep grey nuclei (both sides): one tissue contrast, told apart by position only.
DEEP_GREY_CLASSES: tuple[str, ...] = tuple(
    f"{side}_{name}"
    for name in ("thalamus", "caudate", "putamen", "pallidum")
    for side in ("left", "right")
)

#: Class id of the lesion class.
LESION_CLASS: int = PARCELLATION_CLASSES.index("lesion")


def _structure_lut() -> Tensor:
    lut = torch.zeros(len(STRUCTURES), dtype=torch.int64)
    for name, sid in STRUCTURES.items():
        target = name
        for side in ("left", "right"):
            if name in (f"{side}_cerebellum_cortex", f"{side}_cerebellum_white_matter"):
                target = f"{side}_cerebellum"
        if target in PARCELLATION_CLASSES:
            lut[sid] = PARCELLATION_CLASSES.index(target)
    return lut


_LUT = _structure_lut()


def parcellation_map(anatomy: Tensor, lesion_map: Tensor | None = None) -> Tensor:
    """Class ids of :data:`PARCELLATION_CLASSES` for an anatomy map (and its lesions).

    Args:
        anatomy: Integer structure ids (:data:`~lightly_topo.data.synthetic.STRUCTURES`),
            any shape.
        lesion_map: Lesion ids of the same shape (any non-zero value is a lesion), or
            ``None``.

    Returns:
        int64 class ids, the shape of ``anatomy``.
    """
    classes = _LUT[anatomy.long()]
    if lesion_map is not None:
        classes = torch.where(lesion_map > 0, torch.full_like(classes, LESION_CLASS), classes)
    return classes
