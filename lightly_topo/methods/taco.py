"""TACO: masked reconstruction plus topological alignment of co-registered modalities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lightly_topo.methods.base import PretrainMethod
from lightly_topo.methods.components import (
    build_config_backbone,
    build_topo_loss,
    ensure_min_tokens,
    feature_level,
    foreground,
    topo_stats,
)
from lightly_topo.methods.config import ConfigError, PretrainConfig
from lightly_topo.methods.masked_reconstruction import (
    MultiScaleDecoder,
    masked_mse,
    random_patch_mask,
)
from lightly_topo.transforms.foreground import foreground_tokens


class TACO(PretrainMethod):
    """TACO [0]: reconstruction + ``10 * intra + 10 * inter`` topological alignment.

    Every batch element is one subject with two of its modalities ``a`` and ``b`` cropped
    under one spatial draw (:class:`~lightly_topo.transforms.TopoTransform3D`), so voxel
    ``i`` of both views is the same point; the pairs are balanced over the modality pairs
    and the subjects of a batch are distinct
    (:class:`~lightly_topo.samplers.CrossSubjectBatchSampler`). One shared single-channel
    encoder takes both views (one forward pass over ``2B`` volumes); random cubic patches are
    hidden (the same ones in ``a`` and ``b``) and a light
    :class:`~lightly_topo.methods.masked_reconstruction.MultiScaleDecoder` reconstructs each
    view (loss on the hidden voxels). The dense features at ``topo.level`` (the coarsest,
    3^3 at 96^3 crops with Swin, as released; finer levels are allowed) of ``a`` and ``b``
    enter :class:`~lightly_topo.loss.TopoAlignLoss` with the brain-foreground tokens as the
    validity mask, gathered across ranks under DDP.

    Defaults are the paper's released recipe (see
    :data:`lightly_topo.methods.config.METHOD_DEFAULTS`): Swin-UNETR encoder with feature
    size 48, 96^3 crops, at most 6 subject pairs per batch, ``k = 5``, margins 0.05 / 0.4,
    AdamW lr 3e-4, weight decay 0.1.

    - [0] Beyond Instance-Level Self-Supervision in 3D Multi-Modal Medical Imaging (TACO),
      ICML 2026.

    Args:
        config: The run's configuration.
        modality_names: The dataset's modality vocabulary (at least two modalities).
    """

    name: ClassVar[str] = "taco"
    description: ClassVar[str] = (
        "TACO: masked reconstruction + topological alignment (10 intra + 10 inter) of modality pairs."
    )
    view_kind: ClassVar[str] = "pair"
    needs_pairs: ClassVar[bool] = True
    uses_foreground: ClassVar[bool] = True

    def __init__(self, config: PretrainConfig, modality_names: Sequence[str]) -> None:
        super().__init__(config, modality_names)
        self.backbone = build_config_backbone(config, 1)
        crop = config.data.crop_size
        if crop % config.loss.mask_patch:
            raise ConfigError(
                f"loss.mask_patch={config.loss.mask_patch} must divide data.crop_size={crop}."
            )
        self.level = feature_level(config, self.backbone, crop)
        self.stride = self.backbone.feature_strides[self.level]
        self.decoder = MultiScaleDecoder(
            self.backbone.feature_channels,
            self.backbone.feature_strides,
            out_channels=1,
            width=min(32, config.loss.decoder_dim),
        )
        self.topo = build_topo_loss(config)

    @property
    def encoder(self) -> nn.Module:
        return self.backbone

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        image_a, image_b = batch["image_a"], batch["image_b"]
        b = image_a.shape[0]
        voxel_mask = random_patch_mask(
            (b, *image_a.shape[2:]),
            self.config.loss.mask_patch,
            self.config.loss.mask_ratio,
            device=image_a.device,
        )
        volumes = torch.cat([image_a, image_b], dim=0)
        hidden = torch.cat([voxel_mask, voxel_mask], dim=0)
        features = self.backbone.forward_features(volumes * (~hidden).to(volumes.dtype))
        recon = masked_mse(self.decoder(features), volumes, hidden)

        dense = features[self.level]
        fg = batch.get("foreground")
        if fg is None:
            fg = foreground(torch.cat([image_a, image_b], dim=1))
        valid = foreground_tokens(fg, self.stride)
        valid_fraction = valid.float().mean()
        valid = ensure_min_tokens(valid, self.config.topo.k)
        topo = self.topo(dense[:b], dense[b:], subject_ids=list(batch["subject_id"]), mask=valid)
        stats = self.topo.last_stats
        loss = self.config.loss.recon_weight * recon + topo

        with torch.no_grad():
            pooled = self.backbone.pool([f[:b] for f in features]).detach()
        self.step_outputs.update(
            embedding=pooled,
            pooled=pooled,
            probe_target=batch["probe_target"],
            valid_fraction=valid_fraction.detach(),
        )
        parts = {"reconstruction": recon.detach(), "topo": topo.detach(), **topo_stats(self.topo)}
        if "matched_fraction" in stats:
            self.step_outputs["matched_fraction"] = stats["matched_fraction"].detach()
        return loss, parts
