"""Errors raised by the models package on bad configuration or input."""

from __future__ import annotations

from lightly_topo.errors import LightlyTopoError


class ModelError(LightlyTopoError):
    """Base class of every error the models package raises on bad input."""


class UnknownBackboneError(ModelError, LookupError):
    """A backbone name that is not one of the known backbones."""


class ModelConfigError(ModelError, ValueError):
    """A backbone or encoder configuration that cannot be built (sizes, heads, modes)."""


class InputShapeError(ModelError, ValueError):
    """An input tensor whose rank, channels or spatial size the model cannot take."""
