"""SimCLR on 3D multimodal views: instance = subject."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import Tensor, nn

from lightly_topo.methods.base import PretrainMethod
from lightly_topo.methods.components import build_config_backbone
from lightly_topo.methods.config import PretrainConfig
from lightly_topo.models import MultiModalEncoder


class SimCLR3D(PretrainMethod):
    """SimCLR [0] with two augmented 3D views of every subject (all its modalities).

    The two views come from :class:`~lightly_topo.transforms.SimCLRTransform3D`; a batch
    holds distinct subjects (:class:`~lightly_topo.samplers.SubjectBatchSampler`), so no two
    scans of one subject become negatives. The modalities are encoded by a
    :class:`~lightly_topo.models.MultiModalEncoder` (shared or channel-stacked), pooled,
    projected by Lightly's ``SimCLRProjectionHead`` and compared with Lightly's
    ``NTXentLoss`` (gathered across ranks under DDP).

    - [0] Chen et al., A Simple Framework for Contrastive Learning of Visual
      Representations, 2020, https://arxiv.org/abs/2002.05709

    Args:
        config: The run's configuration.
        modality_names: The dataset's modality vocabulary.

    Example:
        >>> from lightly_topo.methods.config import build_config
        >>> config = build_config({"model": {"backbone": "resenc",
        ...     "backbone_kwargs": {"features": [8, 16], "blocks_per_stage": 1}}})
        >>> SimCLR3D(config, ("t1", "t2")).name
        'simclr'
    """

    name: ClassVar[str] = "simclr"
    description: ClassVar[str] = "SimCLR on two 3D views of each subject (NT-Xent)."
    view_kind: ClassVar[str] = "simclr"

    def __init__(self, config: PretrainConfig, modality_names: Sequence[str]) -> None:
        super().__init__(config, modality_names)
        shared = config.model.modality_handling == "shared"
        backbone = build_config_backbone(config, 1 if shared else len(self.modality_names))
        self.mm_encoder = MultiModalEncoder(
            backbone, config.model.modality_handling, len(self.modality_names)
        )
        self.projection_head = SimCLRProjectionHead(
            backbone.embed_dim, config.model.hidden_dim, config.model.projection_dim
        )
        self.criterion = NTXentLoss(temperature=config.loss.temperature, gather_distributed=True)

    @property
    def encoder(self) -> nn.Module:
        return self.mm_encoder.backbone

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        view0, view1 = batch["views"][:2]
        feats0 = self.mm_encoder.forward_fused(view0["image"], view0["mask"])
        feats1 = self.mm_encoder.forward_fused(view1["image"], view1["mask"])
        pooled0 = self.mm_encoder.backbone.pool(feats0)
        pooled1 = self.mm_encoder.backbone.pool(feats1)
        z0 = self.projection_head(pooled0)
        z1 = self.projection_head(pooled1)
        ntxent = self.criterion(z0, z1)
        self.step_outputs.update(
            embedding=z0.detach(), pooled=pooled0.detach(), probe_target=batch["probe_target"]
        )
        parts = {"ntxent": ntxent.detach()}
        loss = self.config.loss.instance_weight * ntxent if self.uses_topo else ntxent
        extra, logs = self.extra_terms(feats0, feats1, batch)
        for key, value in extra.items():
            loss = loss + value
            parts[key] = value.detach()
        parts.update(logs)
        return loss, parts

    #: Whether the method adds the topology terms (set by the combination).
    uses_topo: ClassVar[bool] = False

    def extra_terms(
        self, feats0: list[Tensor], feats1: list[Tensor], batch: dict[str, Any]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Additional (weighted) loss terms on the two views' dense features, and detached
        statistics to log; none here."""
        return {}, {}
