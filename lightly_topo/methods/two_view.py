"""What SimCLR and BYOL share: one multimodal encoder over two spatial views of a subject."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from lightly_topo.methods.base import PretrainMethod
from lightly_topo.methods.components import build_config_backbone
from lightly_topo.methods.config import PretrainConfig
from lightly_topo.models import MultiModalEncoder


class TwoViewMethod(PretrainMethod):
    """Base of the instance methods on two spatial views of every subject (all modalities).

    Builds the :class:`~lightly_topo.models.MultiModalEncoder` (shared or channel-stacked
    backbone), encodes and pools the two views, and adds the terms of :meth:`extra_terms` to
    the instance loss (the hook the ``+topo`` combinations fill).

    Attributes:
        uses_topo: The method adds the topology terms (set by the combinations); the
            instance term is then weighted by ``loss.instance_weight``.

    Args:
        config: The run's configuration.
        modality_names: The dataset's modality vocabulary.
    """

    uses_topo: ClassVar[bool] = False

    def __init__(self, config: PretrainConfig, modality_names: Sequence[str]) -> None:
        super().__init__(config, modality_names)
        shared = config.model.modality_handling == "shared"
        backbone = build_config_backbone(config, 1 if shared else len(self.modality_names))
        self.mm_encoder = MultiModalEncoder(
            backbone, config.model.modality_handling, len(self.modality_names)
        )

    @property
    def encoder(self) -> nn.Module:
        return self.mm_encoder.backbone

    def encode_views(
        self, batch: dict[str, Any]
    ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
        """Dense features and pooled features of the batch's two views.

        Returns:
            ``(feats0, feats1, pooled0, pooled1)``: one ``(B, C_l, d, h, w)`` map per level
            of each view, and each view's pooled ``(B, C)`` features.
        """
        view0, view1 = batch["views"][:2]
        feats0 = self.mm_encoder.forward_fused(view0["image"], view0["mask"])
        feats1 = self.mm_encoder.forward_fused(view1["image"], view1["mask"])
        pooled0 = self.mm_encoder.backbone.pool(feats0)
        pooled1 = self.mm_encoder.backbone.pool(feats1)
        return feats0, feats1, pooled0, pooled1

    def total_loss(
        self,
        instance: Tensor,
        parts: dict[str, Tensor],
        feats0: list[Tensor],
        feats1: list[Tensor],
        batch: dict[str, Any],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The instance term plus the terms of :meth:`extra_terms`.

        Args:
            instance: The instance loss (NT-Xent, BYOL).
            parts: Components logged so far; the extra terms (detached) and their statistics
                are added to it.
            feats0: Dense features of view 0.
            feats1: Dense features of view 1.
            batch: The batch.

        Returns:
            The total loss and ``parts``.
        """
        loss = self.config.loss.instance_weight * instance if self.uses_topo else instance
        extra, logs = self.extra_terms(feats0, feats1, batch)
        for key, value in extra.items():
            loss = loss + value
            parts[key] = value.detach()
        parts.update(logs)
        return loss, parts

    def extra_terms(
        self, feats0: list[Tensor], feats1: list[Tensor], batch: dict[str, Any]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Additional (weighted) loss terms on the two views' dense features, and detached
        statistics to log; none here."""
        return {}, {}
