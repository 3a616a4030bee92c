"""Embedded synthetic default: co-registered multi-contrast brain subjects, no files needed.

>>> from lightly_topo.data.synthetic import SyntheticBrains
>>> SyntheticBrains(4, size=32)[0]["images"]["t1"].shape
torch.Size([1, 32, 32, 32])
"""

from lightly_topo.data.synthetic.contrast import (
    LESION_CONTRAST,
    SYNTHETIC_MODALITIES,
    TISSUE_CONTRAST,
    AcquisitionParams,
)
from lightly_topo.data.synthetic.dataset import SyntheticBrains
from lightly_topo.data.synthetic.deform import DeformationParams
from lightly_topo.data.synthetic.generator import SyntheticConfig, SyntheticSubject
from lightly_topo.data.synthetic.io import LABELS_CSV, write_brats_folder
from lightly_topo.data.synthetic.label_maps import FREESURFER_TO_STRUCTURE
from lightly_topo.data.synthetic.lesions import (
    BENCHMARK_LESIONS,
    LESION_TYPES,
    LesionClass,
    LesionParams,
    lesion_schedule,
)
from lightly_topo.data.synthetic.structures import (
    LESION_LABELS,
    STRUCTURE_TISSUE,
    STRUCTURES,
    TISSUES,
)

__all__ = [
    "BENCHMARK_LESIONS",
    "FREESURFER_TO_STRUCTURE",
    "LABELS_CSV",
    "LESION_CONTRAST",
    "LESION_LABELS",
    "LESION_TYPES",
    "STRUCTURES",
    "STRUCTURE_TISSUE",
    "SYNTHETIC_MODALITIES",
    "TISSUES",
    "TISSUE_CONTRAST",
    "AcquisitionParams",
    "DeformationParams",
    "LesionClass",
    "LesionParams",
    "SyntheticBrains",
    "SyntheticConfig",
    "SyntheticSubject",
    "lesion_schedule",
    "write_brats_folder",
]
