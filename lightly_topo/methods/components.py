"""Pieces the methods share: backbone construction, token masks and the topology term."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightly_topo.loss import TopoAlignLoss
from lightly_topo.methods.config import ConfigError, PretrainConfig
from lightly_topo.models import Backbone3D, build_backbone


def build_config_backbone(config: PretrainConfig, in_channels: int) -> Backbone3D:
    """The backbone named in ``config.model`` with ``in_channels`` input channels.

    A ViT without an explicit ``img_size`` is built for ``data.crop_size`` (its MAE decoder's
    positional embedding is sized from it).
    """
    kwargs: dict[str, Any] = dict(config.model.backbone_kwargs)
    if "in_channels" in kwargs:
        raise ConfigError(
            "model.backbone_kwargs.in_channels is set by the method (1 per modality with "
            "modality_handling 'shared', M when 'stacked'); remove it."
        )
    if config.model.backbone == "vit":
        kwargs.setdefault("img_size", config.data.crop_size)
    return build_backbone(config.model.backbone, in_channels=in_channels, **kwargs)


def build_topo_loss(config: PretrainConfig, modality_pairs: str = "all") -> TopoAlignLoss:
    """:class:`TopoAlignLoss` with the ``topo`` settings, gathering across ranks under DDP.

    Args:
        config: The run's configuration (``topo`` section).
        modality_pairs: Which modality pairs of a subject the loss compares (``"all"`` or
            ``"random"``, see :class:`TopoAlignLoss`).
    """
    topo = config.topo
    return TopoAlignLoss(
        intra_weight=topo.intra_weight,
        inter_weight=topo.inter_weight,
        k=topo.k,
        intra_margin=topo.intra_margin,
        inter_margin=topo.inter_margin,
        gather_distributed=True,
        modality_pairs=modality_pairs,
    )


def topo_stats(loss: TopoAlignLoss) -> dict[str, Tensor]:
    """Detached float ``intra``, ``inter`` and ``matched_fraction`` of the loss' last call
    (those it reported)."""
    keys = ("intra", "inter", "matched_fraction")
    return {key: loss.last_stats[key].detach().float() for key in keys if key in loss.last_stats}


def feature_level(config: PretrainConfig, backbone: Backbone3D, crop_size: int) -> int:
    """Index of the dense level used by the topology terms, checked against the crop.

    Raises:
        ConfigError: ``topo.level`` outside the backbone's levels, or a level with fewer
            than ``k + 2`` tokens at this crop size.
    """
    n = len(backbone.feature_strides)
    level = config.topo.level
    if not -n <= level < n:
        raise ConfigError(
            f"topo.level={level} but backbone {config.model.backbone!r} has {n} levels with "
            f"strides {backbone.feature_strides}; use an index in [{-n}, {n - 1}]."
        )
    level %= n
    side = crop_size // backbone.feature_strides[level]
    if side**3 < config.topo.k + 2:
        finer = [
            i
            for i, s in enumerate(backbone.feature_strides)
            if (crop_size // s) ** 3 >= config.topo.k + 2
        ]
        raise ConfigError(
            f"topo.level={config.topo.level} (stride {backbone.feature_strides[level]}) gives "
            f"{side}^3 tokens at data.crop_size={crop_size}, fewer than topo.k + 2 = "
            f"{config.topo.k + 2}; choose a finer level ({finer[-1] if finer else 0}) or a "
            "larger crop."
        )
    return level


def foreground(image: Tensor, mask: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """Voxels where any available modality is non-zero: bool ``(B, 1, D, H, W)``.

    Args:
        image: ``(B, M, D, H, W)``.
        mask: Availability ``(B, M)``; ``None``: all available.
    """
    values = image.detach().abs()
    if mask is not None:
        values = values * mask[:, :, None, None, None].to(values.dtype)
    return values.amax(dim=1, keepdim=True) > eps


def tokens(feature_map: Tensor) -> Tensor:
    """``(B, C, D, H, W)`` to tokens ``(B, N, C)``."""
    return feature_map.flatten(2).transpose(1, 2)


def ensure_min_tokens(mask: Tensor, k: int) -> Tensor:
    """Valid-token mask where every sample keeps at least ``k + 2`` tokens.

    A sample with fewer valid tokens (an almost empty crop) falls back to all its tokens, so
    the topology loss always has neighbourhoods to compare.
    """
    few = mask.sum(dim=1) < k + 2
    if bool(few.any()):
        mask = mask.clone()
        mask[few] = True
    return mask


def matched_view_tokens(feats_b: Tensor, index: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Tokens of view b re-ordered to view a's token grid.

    Args:
        feats_b: Dense map of view b ``(B, C, d, h, w)``.
        index: For every token of view a, the index of the token of view b at the same place
            ``(B, N_a)`` (any value where not valid).
        valid: ``(B, N_a)`` bool, tokens of a that have a partner in b.

    Returns:
        Tokens ``(B, N_a, C)`` and the validity mask.
    """
    tok = tokens(feats_b)
    safe = index.clamp(0, tok.shape[1] - 1).long()
    gathered = torch.gather(tok, 1, safe.unsqueeze(-1).expand(-1, -1, tok.shape[2]))
    return gathered, valid


def subject_keys(subject_ids: Sequence[str]) -> list[str]:
    """Subject ids as a list of str (for the topology loss' subject grouping)."""
    return [str(s) for s in subject_ids]
