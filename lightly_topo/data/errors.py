"""Errors raised by the data layer.

Every error names the offending file (or subject) and what is wrong with it, so a user
can fix the input without reading the code.
"""

from __future__ import annotations

from lightly_topo.errors import LightlyTopoError


class DataError(LightlyTopoError):
    """Base class of every error the data layer raises on bad input."""


class UnknownModalityError(DataError, ValueError):
    """A modality name that cannot be placed in the vocabulary."""


class LayoutError(DataError, ValueError):
    """A folder or manifest that does not follow the expected layout."""


class ManifestError(DataError, ValueError):
    """A manifest (CSV, JSON, TSV) with a missing column, a duplicate row or a bad value."""


class MissingFileError(DataError, FileNotFoundError):
    """A file named by a manifest or layout that does not exist on disk."""


class CorruptFileError(DataError, OSError):
    """A file that exists but cannot be decoded (truncated or corrupt NIfTI, ...)."""


class InvalidVolumeError(DataError, ValueError):
    """A decoded volume with bad content: NaN or Inf voxels, wrong rank, ..."""


class RegistrationError(DataError, ValueError):
    """Modalities of one subject that do not share shape and affine within tolerance."""


class EmptyDatasetError(DataError, ValueError):
    """A dataset or folder that holds no subject."""
