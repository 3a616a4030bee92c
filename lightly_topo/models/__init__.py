"""3D backbones with one interface, modality handling and MAE pieces.

Every backbone is a :class:`Backbone3D`: ``forward_features(x)`` gives multi-scale dense maps
``(B, C_l, D/s_l, H/s_l, W/s_l)`` with ``feature_channels`` and ``feature_strides`` known, and
``forward(x)`` a pooled ``(B, embed_dim)`` embedding. Build one by name with
:func:`build_backbone` (``"swin"``, ``"resenc"``, ``"vit"``); backbones added by plugins are
built through ``lightly_topo.registry.create("backbone", name)``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from lightly_topo.models.base import Backbone3D
from lightly_topo.models.errors import (
    InputShapeError,
    ModelConfigError,
    ModelError,
    UnknownBackboneError,
)
from lightly_topo.models.modality import EncoderOutput, ModalityMode, MultiModalEncoder
from lightly_topo.models.patchify import patchify3d, unpatchify3d
from lightly_topo.models.pos_embed import get_3d_sincos_pos_embed, resample_pos_embed_3d

if TYPE_CHECKING:
    from lightly_topo.models.mae_decoder import MAEDecoder3D
    from lightly_topo.models.resenc import ResEncBackbone
    from lightly_topo.models.swin import SwinBackbone
    from lightly_topo.models.vit3d import ViT3D

# Imported on first use: MONAI (resenc, swin) and Lightly/timm (vit3d, the MAE decoder)
# take seconds to import, which a user who only needs one backbone should not pay.
_LAZY = {
    "MAEDecoder3D": "mae_decoder",
    "ResEncBackbone": "resenc",
    "SwinBackbone": "swin",
    "ViT3D": "vit3d",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"lightly_topo.models.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lightly_topo.models' has no attribute {name!r}")


class _Backbones(Mapping[str, type[Backbone3D]]):
    """Backbone name -> class, each class imported when it is first looked up."""

    names: ClassVar[dict[str, str]] = {
        "swin": "SwinBackbone",
        "resenc": "ResEncBackbone",
        "vit": "ViT3D",
    }

    def __getitem__(self, name: str) -> type[Backbone3D]:
        return __getattr__(self.names[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


#: Backbone name -> class (``"swin"``, ``"resenc"``, ``"vit"``).
BACKBONES: Mapping[str, type[Backbone3D]] = _Backbones()


def build_backbone(name: str, **kwargs: Any) -> Backbone3D:
    """Builds the backbone called ``name`` with keyword arguments ``kwargs``.

    Args:
        name: One of ``"swin"``, ``"resenc"``, ``"vit"``.
        **kwargs: Arguments of the backbone class (e.g. ``feature_size=12`` for ``swin``).

    Raises:
        UnknownBackboneError: If ``name`` is not a known backbone (the message lists them).
        ModelConfigError: If the arguments do not make a valid backbone.

    Examples:
        >>> build_backbone("swin", feature_size=12).feature_channels
        (12, 24, 48, 96, 192)
    """
    cls = BACKBONES.get(name)
    if cls is None:
        close = difflib.get_close_matches(str(name), BACKBONES, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownBackboneError(
            f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}.{hint}"
        )
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ModelConfigError(f"backbone {name!r}: bad arguments {sorted(kwargs)}: {exc}") from exc


__all__ = [
    "BACKBONES",
    "Backbone3D",
    "EncoderOutput",
    "InputShapeError",
    "MAEDecoder3D",
    "ModalityMode",
    "ModelConfigError",
    "ModelError",
    "MultiModalEncoder",
    "ResEncBackbone",
    "SwinBackbone",
    "UnknownBackboneError",
    "ViT3D",
    "build_backbone",
    "get_3d_sincos_pos_embed",
    "patchify3d",
    "resample_pos_embed_3d",
    "unpatchify3d",
]
