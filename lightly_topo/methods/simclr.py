"""SimCLR on 3D multimodal views: instance = subject."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import Tensor

from lightly_topo.methods.config import PretrainConfig
from lightly_topo.methods.two_view import TwoViewMethod


class SimCLR3D(TwoViewMethod):
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
        self.projection_head = SimCLRProjectionHead(
            self.mm_encoder.backbone.embed_dim,
            config.model.hidden_dim,
            config.model.projection_dim,
        )
        self.criterion = NTXentLoss(temperature=config.loss.temperature, gather_distributed=True)

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        feats0, feats1, pooled0, pooled1 = self.encode_views(batch)
        z0 = self.projection_head(pooled0)
        z1 = self.projection_head(pooled1)
        ntxent = self.criterion(z0, z1)
        self.step_outputs.update(
            embedding=z0.detach(), pooled=pooled0.detach(), probe_target=batch["probe_target"]
        )
        return self.total_loss(ntxent, {"ntxent": ntxent.detach()}, feats0, feats1, batch)
