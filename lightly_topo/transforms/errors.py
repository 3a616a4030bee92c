"""Errors raised by the transforms on bad input.

Every message names the argument, the expected shape or dtype (shapes written
``(C, D, H, W)``) and what was received.
"""

from __future__ import annotations

from lightly_topo.errors import LightlyTopoError


class TransformError(LightlyTopoError, ValueError):
    """Base class of every error the transforms raise on bad input."""


class TransformInputError(TransformError):
    """A tensor or item with the wrong rank, shape, dtype or content."""


class NotEnoughModalitiesError(TransformError):
    """A subject with fewer available modalities than a transform needs."""
