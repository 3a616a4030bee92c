"""Encoding several MRI modalities: one shared encoder per modality or channel stacking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from lightly_topo.models.base import Backbone3D
from lightly_topo.models.errors import InputShapeError, ModelConfigError

ModalityMode = Literal["shared", "stacked"]


@dataclass
class EncoderOutput:
    """What :meth:`MultiModalEncoder.encode` returns: both heads' inputs from one pass.

    Attributes:
        pooled: ``(B, embed_dim)``: the pooled, modality-fused embedding (mask-aware mean
            over the available modalities), for a Lightly projection head.
        dense: One ``(B, M, C_l, d, h, w)`` per requested level: the per-modality dense maps
            for the topology terms (zero where a modality is missing; pass the availability
            mask to the loss as ``modality_mask``).
        levels: The requested levels, as non-negative indices.
    """

    pooled: Tensor
    dense: list[Tensor]
    levels: tuple[int, ...]


class MultiModalEncoder(nn.Module):
    """Encodes a multi-modal batch ``(B, M, D, H, W)`` with its availability mask ``(B, M)``.

    * ``mode="shared"`` (default, as in TACO): one single-channel backbone encodes each
      available modality separately, so any modality or subset can be encoded. Only the
      available volumes are gathered into one batch of ``B'`` single-channel volumes and
      encoded, then scattered back. Fused features are the mask-aware mean over the available
      modalities: a missing modality is never averaged in.
    * ``mode="stacked"``: the backbone takes the ``M`` modalities as ``M`` input channels;
      missing channels are set to zero (whatever they held), so the result never depends on a
      masked modality. Per-modality features do not exist in this mode.

    Every sample needs at least one available modality.

    Args:
        backbone: A :class:`Backbone3D` with ``in_channels == 1`` (shared) or ``num_modalities``
            (stacked).
        mode: ``"shared"`` or ``"stacked"``.
        num_modalities: ``M``, the size of the modality vocabulary.

    Examples:
        >>> from lightly_topo.models import build_backbone
        >>> enc = MultiModalEncoder(
        ...     build_backbone("resenc", features=(8, 16), blocks_per_stage=1), num_modalities=4
        ... )
        >>> image, mask = torch.randn(2, 4, 32, 32, 32), torch.tensor([[1, 1, 0, 1], [0, 1, 0, 0]]).bool()
        >>> enc.embed(image, mask).shape
        torch.Size([2, 16])
        >>> enc.forward_modalities(image, mask)[-1].shape
        torch.Size([2, 4, 16, 16, 16, 16])
        >>> out = enc.encode(image, mask, levels=[-1])  # both heads from one pass
        >>> out.pooled.shape, out.dense[0].shape, enc.channels(-1), enc.stride(-1)
        (torch.Size([2, 16]), torch.Size([2, 4, 16, 16, 16, 16]), 16, 2)
    """

    def __init__(
        self, backbone: Backbone3D, mode: ModalityMode = "shared", num_modalities: int = 1
    ) -> None:
        super().__init__()
        if mode not in ("shared", "stacked"):
            raise ModelConfigError(
                f"MultiModalEncoder: mode must be 'shared' or 'stacked', got {mode!r}."
            )
        if num_modalities < 1:
            raise ModelConfigError(
                f"MultiModalEncoder: num_modalities must be >= 1, got {num_modalities}."
            )
        expected = 1 if mode == "shared" else num_modalities
        if backbone.in_channels != expected:
            raise ModelConfigError(
                f"MultiModalEncoder(mode={mode!r}, num_modalities={num_modalities}) needs a backbone "
                f"with in_channels={expected}, got {type(backbone).__name__} with "
                f"in_channels={backbone.in_channels}."
            )
        self.backbone = backbone
        self.mode: ModalityMode = mode
        self.num_modalities = int(num_modalities)

    @property
    def feature_channels(self) -> tuple[int, ...]:
        return self.backbone.feature_channels

    @property
    def feature_strides(self) -> tuple[int, ...]:
        return self.backbone.feature_strides

    @property
    def embed_dim(self) -> int:
        return self.backbone.embed_dim

    def _level(self, level: int) -> int:
        n = len(self.feature_channels)
        if not -n <= level < n:
            levels = ", ".join(
                f"{i}: {c} channels, stride {s}"
                for i, (c, s) in enumerate(zip(self.feature_channels, self.feature_strides))
            )
            raise ModelConfigError(
                f"MultiModalEncoder: no feature level {level}; this backbone "
                f"({type(self.backbone).__name__}) has {n} levels ({levels}); negative "
                "indices count from the coarsest."
            )
        return level % n

    def channels(self, level: int) -> int:
        """Channels ``C_l`` of feature level ``level`` (negative counts from the coarsest):
        the input size of a head on that level's dense features."""
        return self.feature_channels[self._level(level)]

    def stride(self, level: int) -> int:
        """Stride of feature level ``level`` relative to the input voxels."""
        return self.feature_strides[self._level(level)]

    def encode(self, image: Tensor, mask: Tensor, levels: Sequence[int] = (-1,)) -> EncoderOutput:
        """Both heads' inputs from one pass of the backbone (shared mode).

        Args:
            image: ``(B, M, D, H, W)``.
            mask: Availability ``(B, M)`` bool.
            levels: Feature levels whose per-modality dense maps are returned (negative
                counts from the coarsest; ``()``: none).

        Returns:
            :class:`EncoderOutput`: ``pooled`` equals :meth:`embed`, ``dense[i]`` equals
            ``forward_modalities(image, mask)[levels[i]]``.
        """
        if self.mode != "shared":
            raise ModelConfigError(
                "MultiModalEncoder.encode needs mode='shared'; a channel-stacked encoder has "
                "no per-modality features (use embed / forward_fused)."
            )
        picked = tuple(self._level(level) for level in levels)
        self._check(image, mask)
        index, features = self._encode_available(image, mask)
        pooled = self.backbone.pool(self._fuse(index, features, mask))
        dense = [self._scatter(index, features[level], mask) for level in picked]
        return EncoderOutput(pooled=pooled, dense=dense, levels=picked)

    @staticmethod
    def _scatter(index: Tensor, feat: Tensor, mask: Tensor) -> Tensor:
        full = feat.new_zeros((*mask.shape, *feat.shape[1:]))
        full[index[:, 0], index[:, 1]] = feat
        return full

    @staticmethod
    def _fuse(index: Tensor, features: list[Tensor], mask: Tensor) -> list[Tensor]:
        counts = mask.sum(dim=1)
        out = []
        for feat in features:
            total = feat.new_zeros((mask.shape[0], *feat.shape[1:]))
            total = total.index_add(0, index[:, 0], feat)
            out.append(total / counts.to(feat.dtype).view(-1, *([1] * (feat.ndim - 1))))
        return out

    def _check(self, image: Tensor, mask: Tensor) -> None:
        if image.ndim != 5 or image.shape[1] != self.num_modalities:
            raise InputShapeError(
                f"MultiModalEncoder expects image (B, M, D, H, W) with M={self.num_modalities}, "
                f"got {tuple(image.shape)}."
            )
        if mask.shape != image.shape[:2] or mask.dtype != torch.bool:
            raise InputShapeError(
                f"MultiModalEncoder expects a bool mask (B, M) = {tuple(image.shape[:2])}, got "
                f"{mask.dtype} {tuple(mask.shape)}."
            )
        empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise InputShapeError(
                f"MultiModalEncoder: samples {empty} of the batch have no available modality "
                f"(mask all False); drop them or give at least one modality."
            )

    def _encode_available(self, image: Tensor, mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Indices ``(B', 2)`` of the available (sample, modality) pairs and their features."""
        index = mask.nonzero()
        volumes = image[index[:, 0], index[:, 1]].unsqueeze(1)
        return index, self.backbone.forward_features(volumes)

    def forward_modalities(self, image: Tensor, mask: Tensor) -> list[Tensor]:
        """Per-modality features (shared mode), one ``(B, M, C_l, d, h, w)`` per level.

        Entries of missing modalities are zero and must not be read.
        """
        if self.mode != "shared":
            raise ModelConfigError(
                "MultiModalEncoder.forward_modalities needs mode='shared'; a channel-stacked "
                "encoder has no per-modality features."
            )
        self._check(image, mask)
        index, features = self._encode_available(image, mask)
        return [self._scatter(index, feat, mask) for feat in features]

    def forward_fused(self, image: Tensor, mask: Tensor) -> list[Tensor]:
        """Modality-fused features, one ``(B, C_l, d, h, w)`` per level.

        Shared mode: mean over the available modalities only. Stacked mode: the backbone on
        the channel stack with missing channels zeroed.
        """
        self._check(image, mask)
        if self.mode == "stacked":
            zeroed = image * mask[:, :, None, None, None].to(image.dtype)
            return self.backbone.forward_features(zeroed)
        index, features = self._encode_available(image, mask)
        return self._fuse(index, features, mask)

    def embed(self, image: Tensor, mask: Tensor) -> Tensor:
        """Pooled embedding ``(B, embed_dim)`` of the fused features."""
        return self.backbone.pool(self.forward_fused(image, mask))

    def embed_modalities(self, image: Tensor, mask: Tensor) -> Tensor:
        """Pooled embedding of each modality (shared mode): ``(B, M, embed_dim)``, zero where
        the modality is missing."""
        if self.mode != "shared":
            raise ModelConfigError(
                "MultiModalEncoder.embed_modalities needs mode='shared'; a channel-stacked "
                "encoder has no per-modality embeddings."
            )
        self._check(image, mask)
        index, features = self._encode_available(image, mask)
        pooled = self.backbone.pool(features)
        out = pooled.new_zeros((*mask.shape, pooled.shape[-1]))
        out[index[:, 0], index[:, 1]] = pooled
        return out

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        """Same as :meth:`embed`."""
        return self.embed(image, mask)
