"""Data layer: subject records, layout readers, NIfTI loading and checks, preprocessing, the
on-disk cache, :class:`MultiModalVolumeDataset`, :func:`collate_subjects` and the synthetic
generator :class:`SyntheticBrains`.

Importing this package loads numpy, nibabel and torch only (no torchio or monai).
"""

from __future__ import annotations

import importlib
from typing import Any

from lightly_topo.data.collate import collate_subjects
from lightly_topo.data.dataset import MultiModalVolumeDataset
from lightly_topo.data.errors import (
    CorruptFileError,
    DataError,
    EmptyDatasetError,
    InvalidVolumeError,
    LayoutError,
    ManifestError,
    MissingFileError,
    RegistrationError,
    UnknownModalityError,
)
from lightly_topo.data.modalities import MODALITIES, describe_modality, normalize_modality
from lightly_topo.data.readers import (
    detect_layout,
    read_bids,
    read_brats,
    read_csv_manifest,
    read_decathlon,
    read_deepmedic,
    read_ixi,
    read_lgg,
    read_ms_lesjak,
    read_nnssl_json,
    read_subjects,
)
from lightly_topo.data.types import LabelValue, ModalityFile, Subject, VolumeItem, volume_item

__all__ = [
    "MODALITIES",
    "CorruptFileError",
    "DataError",
    "EmptyDatasetError",
    "InvalidVolumeError",
    "LabelValue",
    "LayoutError",
    "ManifestError",
    "MissingFileError",
    "ModalityFile",
    "MultiModalVolumeDataset",
    "RegistrationError",
    "Subject",
    "SyntheticBrains",
    "UnknownModalityError",
    "VolumeItem",
    "collate_subjects",
    "describe_modality",
    "detect_layout",
    "normalize_modality",
    "read_bids",
    "read_brats",
    "read_csv_manifest",
    "read_decathlon",
    "read_deepmedic",
    "read_ixi",
    "read_lgg",
    "read_ms_lesjak",
    "read_nnssl_json",
    "read_subjects",
    "volume_item",
]

_LAZY = {"SyntheticBrains": "lightly_topo.data.synthetic"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lightly_topo.data' has no attribute {name!r}")
