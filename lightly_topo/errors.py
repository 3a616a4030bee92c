"""The base class of every error the package raises on purpose.

Each error class of the package also subclasses the builtin it specialises (``ValueError``,
``FileNotFoundError``, ...), so ``except ValueError`` keeps working; ``except
LightlyTopoError`` catches all of them in one clause.

>>> from lightly_topo.data.errors import MissingFileError
>>> issubclass(MissingFileError, LightlyTopoError), issubclass(MissingFileError, FileNotFoundError)
(True, True)
"""

from __future__ import annotations


class LightlyTopoError(Exception):
    """An error of lightly-topo: bad input, configuration, data or state, with a message
    that names what is wrong."""
