"""BYOL on 3D multimodal views: instance = subject, momentum teacher."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import Tensor

from lightly_topo.methods.config import PretrainConfig
from lightly_topo.methods.two_view import TwoViewMethod


class BYOL3D(TwoViewMethod):
    """BYOL [0] with two asymmetric 3D views of every subject (all its modalities).

    Views from :class:`~lightly_topo.transforms.BYOLTransform3D`. The online network
    (a :class:`~lightly_topo.models.MultiModalEncoder`, Lightly's ``BYOLProjectionHead`` and
    ``BYOLPredictionHead``) predicts the momentum network's projection of the other view;
    Lightly's ``NegativeCosineSimilarity``, symmetrised. The momentum follows Lightly's
    ``cosine_schedule`` from ``loss.momentum_start`` to 1 over ``trainer.max_steps`` and is
    applied with ``update_momentum`` after every optimizer step.

    - [0] Grill et al., Bootstrap your own latent, 2020, https://arxiv.org/abs/2006.07733

    Args:
        config: The run's configuration.
        modality_names: The dataset's modality vocabulary.
    """

    name: ClassVar[str] = "byol"
    description: ClassVar[str] = "BYOL on two 3D views of each subject (momentum teacher)."
    view_kind: ClassVar[str] = "byol"

    def __init__(self, config: PretrainConfig, modality_names: Sequence[str]) -> None:
        super().__init__(config, modality_names)
        dim, hidden = config.model.projection_dim, config.model.hidden_dim
        self.projection_head = BYOLProjectionHead(self.mm_encoder.backbone.embed_dim, hidden, dim)
        self.prediction_head = BYOLPredictionHead(dim, hidden, dim)
        self.mm_encoder_momentum = copy.deepcopy(self.mm_encoder)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.mm_encoder_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()

    def momentum(self) -> float:
        """Momentum of the teacher at the current step."""
        return float(
            cosine_schedule(
                self.global_step,
                self.config.trainer.max_steps,
                self.config.loss.momentum_start,
                1.0,
            )
        )

    def after_optimizer_step(self) -> None:
        m = self.momentum()
        update_momentum(self.mm_encoder, self.mm_encoder_momentum, m=m)
        update_momentum(self.projection_head, self.projection_head_momentum, m=m)

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        view0, view1 = batch["views"][:2]
        feats0, feats1, pooled0, pooled1 = self.encode_views(batch)
        z0 = self.projection_head(pooled0)
        p0 = self.prediction_head(z0)
        p1 = self.prediction_head(self.projection_head(pooled1))
        with torch.no_grad():
            t0 = self.projection_head_momentum(
                self.mm_encoder_momentum.embed(view0["image"], view0["mask"])
            )
            t1 = self.projection_head_momentum(
                self.mm_encoder_momentum.embed(view1["image"], view1["mask"])
            )
        byol = 0.5 * (self.criterion(p0, t1.detach()) + self.criterion(p1, t0.detach()))
        self.step_outputs.update(
            embedding=z0.detach(), pooled=pooled0.detach(), probe_target=batch["probe_target"]
        )
        parts = {"byol": byol.detach(), "momentum": torch.tensor(self.momentum())}
        return self.total_loss(byol, parts, feats0, feats1, batch)
