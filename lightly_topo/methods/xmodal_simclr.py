"""Cross-modal SimCLR: two modalities of one subject are the positive pair."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import Tensor, nn

from lightly_topo.methods.base import PretrainMethod
from lightly_topo.methods.components import build_config_backbone
from lightly_topo.methods.config import PretrainConfig


class CrossModalSimCLR3D(PretrainMethod):
    """SimCLR whose two views are two modalities of one subject: a multimodal instance baseline.

    Batches as for :class:`~lightly_topo.methods.TACO` (two co-registered modalities
    ``a``, ``b`` per subject, distinct subjects per batch); one shared single-channel encoder
    embeds both (one pass over ``2B`` volumes), Lightly's ``SimCLRProjectionHead`` and
    ``NTXentLoss`` (gathered across ranks) pull ``a`` and ``b`` of a subject together and push
    other subjects away. Instance-level only: no dense term.

    - Chen et al., A Simple Framework for Contrastive Learning of Visual Representations,
      2020, https://arxiv.org/abs/2002.05709

    Args:
        config: The run's configuration.
        modality_names: The dataset's modality vocabulary (at least two modalities).
    """

    name: ClassVar[str] = "xmodal-simclr"
    description: ClassVar[str] = "SimCLR whose positives are two modalities of one subject."
    view_kind: ClassVar[str] = "pair"
    needs_pairs: ClassVar[bool] = True

    def __init__(self, config: PretrainConfig, modality_names: Sequence[str]) -> None:
        super().__init__(config, modality_names)
        self.backbone = build_config_backbone(config, 1)
        self.projection_head = SimCLRProjectionHead(
            self.backbone.embed_dim, config.model.hidden_dim, config.model.projection_dim
        )
        self.criterion = NTXentLoss(temperature=config.loss.temperature, gather_distributed=True)

    @property
    def encoder(self) -> nn.Module:
        return self.backbone

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        image_a, image_b = batch["image_a"], batch["image_b"]
        b = image_a.shape[0]
        pooled = self.backbone(torch.cat([image_a, image_b], dim=0))
        z = self.projection_head(pooled)
        loss = self.criterion(z[:b], z[b:])
        self.step_outputs.update(
            embedding=z[:b].detach(), pooled=pooled[:b].detach(), probe_target=batch["probe_target"]
        )
        return loss, {"ntxent": loss.detach()}
