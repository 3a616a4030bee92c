"""Masked autoencoding on 3D volumes: token dropping on the ViT, masked input elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from lightly.models import utils
from torch import Tensor, nn

from lightly_topo.methods.base import PretrainMethod
from lightly_topo.methods.components import build_config_backbone, foreground
from lightly_topo.methods.config import ConfigError, PretrainConfig
from lightly_topo.methods.masked_reconstruction import (
    MultiScaleDecoder,
    masked_mse,
    random_patch_mask,
)
from lightly_topo.models import MAEDecoder3D, ViT3D, patchify3d
from lightly_topo.transforms.foreground import foreground_tokens


class MAE3D(PretrainMethod):
    """Masked autoencoder [0] on one 3D view of every subject.

    * ``vit`` backbone: token-dropping MAE. The :class:`~lightly_topo.models.ViT3D` (a
      Lightly ``MaskedVisionTransformer``) encodes only the kept tokens (Lightly's
      ``utils.random_token_mask``); :class:`~lightly_topo.models.MAEDecoder3D` (Lightly's MAE
      decoder with a 3D sine-cosine positional embedding) predicts the voxels of the dropped
      patches; mean squared error on them.
    * ``resenc`` and ``swin``: masked-input reconstruction as in nnssl: random cubic patches
      (``loss.mask_patch`` voxels, ``loss.mask_ratio`` of them) are zeroed, a light
      :class:`~lightly_topo.methods.masked_reconstruction.MultiScaleDecoder` reconstructs the
      input from the multi-scale features, loss on the masked voxels.

    With ``modality_handling: shared`` each available modality is a single-channel sample
    (all modalities of a subject share one mask, so their dense features stay aligned); with
    ``stacked`` the modalities are channels and only available channels count in the loss.
    Runs under bf16 autocast (the loss is computed in float32).

    - [0] He et al., Masked Autoencoders Are Scalable Vision Learners, 2022,
      https://arxiv.org/abs/2111.06377

    Args:
        config: The run's configuration.
        modality_names: The dataset's modality vocabulary.
    """

    name: ClassVar[str] = "mae"
    description: ClassVar[str] = (
        "Masked autoencoder: token-dropping on the 3D ViT, masked-input reconstruction on CNN/Swin."
    )
    view_kind: ClassVar[str] = "mae"

    def __init__(self, config: PretrainConfig, modality_names: Sequence[str]) -> None:
        super().__init__(config, modality_names)
        self.shared = config.model.modality_handling == "shared"
        channels = 1 if self.shared else len(self.modality_names)
        self.backbone = build_config_backbone(config, channels)
        self.token_dropping = isinstance(self.backbone, ViT3D)
        if self.token_dropping:
            vit = self.backbone
            assert isinstance(vit, ViT3D)
            heads = max(1, config.loss.decoder_dim // 32)
            self.decoder: nn.Module = MAEDecoder3D(
                vit.grid_size,
                vit.patch_size,
                in_channels=channels,
                embed_dim=vit.embed_dim,
                decoder_embed_dim=config.loss.decoder_dim,
                decoder_depth=config.loss.decoder_depth,
                decoder_num_heads=heads,
                num_prefix_tokens=vit.num_prefix_tokens,
            )
        else:
            crop = config.data.crop_size
            if crop % config.loss.mask_patch:
                raise ConfigError(
                    f"loss.mask_patch={config.loss.mask_patch} must divide data.crop_size={crop}."
                )
            self.decoder = MultiScaleDecoder(
                self.backbone.feature_channels,
                self.backbone.feature_strides,
                out_channels=channels,
                width=min(32, config.loss.decoder_dim),
            )

    @property
    def encoder(self) -> nn.Module:
        return self.backbone

    # --------------------------------------------------------------------- inputs
    def _volumes(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Encoder inputs, channel weights for the loss and the sample of every input row.

        Shared: ``(B', 1, D, H, W)`` of the available modalities; stacked: ``(B, M, ...)``
        with missing channels zeroed.
        """
        if self.shared:
            index = mask.nonzero()
            volumes = image[index[:, 0], index[:, 1]].unsqueeze(1)
            weights = torch.ones(volumes.shape[0], 1, device=image.device)
            return volumes, weights, index
        weights = mask.to(image.dtype)
        volumes = image * weights[:, :, None, None, None]
        rows = torch.arange(image.shape[0], device=image.device)
        return volumes, weights, torch.stack([rows, torch.zeros_like(rows)], dim=1)

    # --------------------------------------------------------------------- reconstruction
    def reconstruct(
        self, image: Tensor, mask: Tensor
    ) -> tuple[Tensor, list[Tensor] | Tensor, Tensor, Tensor | None]:
        """Reconstruction loss and the encoder's features of one view.

        Returns:
            ``(loss, features, index, keep)``: the loss; the dense feature maps (masked
            input) or the kept patch tokens ``(B', n_keep, C)`` (token dropping); the
            ``(sample, modality)`` of every encoded row; the kept patch indices
            ``(B', n_keep)`` (token dropping) or ``None``.
        """
        volumes, weights, index = self._volumes(image, mask)
        b = image.shape[0]
        if self.token_dropping:
            vit = self.backbone
            assert isinstance(vit, ViT3D) and isinstance(self.decoder, MAEDecoder3D)
            grid = vit.token_grid(volumes)
            seq = vit.num_prefix_tokens + grid[0] * grid[1] * grid[2]
            idx_keep, idx_mask = utils.random_token_mask(
                (b, seq), mask_ratio=self.config.loss.mask_ratio, device=image.device
            )
            idx_keep, idx_mask = idx_keep[index[:, 0]], idx_mask[index[:, 0]]
            encoded = vit.encode(volumes, idx_keep=idx_keep)
            prediction = self.decoder(encoded, idx_keep, idx_mask, grid)
            n_prefix = vit.num_prefix_tokens
            target = utils.get_at_index(patchify3d(volumes, vit.patch_size), idx_mask - n_prefix)
            error = (prediction.float() - target.float()) ** 2
            if self.shared:
                loss = error.mean()
            else:
                # Patches flatten as (pd, ph, pw, C): weight the channels by availability.
                per_channel = error.view(*error.shape[:2], -1, weights.shape[1])
                channel_w = weights.float()[:, None, None, :].expand_as(per_channel)
                loss = (per_channel * channel_w).sum() / channel_w.sum().clamp_min(1.0)
            keep_patches = idx_keep[:, n_prefix:] - n_prefix
            return loss, encoded[:, n_prefix:], index, keep_patches
        voxel_mask = random_patch_mask(
            (b, *image.shape[2:]),
            self.config.loss.mask_patch,
            self.config.loss.mask_ratio,
            device=image.device,
        )[index[:, 0]]
        masked = volumes * (~voxel_mask).to(volumes.dtype)
        features = self.backbone.forward_features(masked)
        prediction = self.decoder(features)
        loss_mask = voxel_mask & (weights[:, :, None, None, None] > 0)
        return masked_mse(prediction, volumes, loss_mask), features, index, None

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        view = batch["views"][0]
        recon, features, index, _ = self.reconstruct(view["image"], view["mask"])
        self._record(features, index, view, batch)
        return self.config.loss.recon_weight * recon, {"reconstruction": recon.detach()}

    def _record(
        self,
        features: list[Tensor] | Tensor,
        index: Tensor,
        view: dict[str, Any],
        batch: dict[str, Any],
    ) -> None:
        """Per-subject pooled features (mean over its modalities) for the monitors/probe."""
        with torch.no_grad():
            if isinstance(features, Tensor):
                rows = features.mean(dim=1)
            else:
                rows = self.backbone.pool(features)
            b = view["image"].shape[0]
            pooled = rows.new_zeros(b, rows.shape[1]).index_add(
                0, index[:, 0], rows.float().to(rows.dtype)
            )
            counts = torch.bincount(index[:, 0], minlength=b).clamp_min(1).to(rows.dtype)
            pooled = (pooled / counts[:, None]).detach()
        self.step_outputs.update(
            embedding=pooled, pooled=pooled, probe_target=batch["probe_target"]
        )

    @staticmethod
    def view_foreground_tokens(view: dict[str, Any], stride: int) -> Tensor:
        """Foreground tokens ``(B, N)`` of a view at ``stride``."""
        fg = view.get("foreground")
        if fg is None:
            fg = foreground(view["image"], view["mask"])
        return foreground_tokens(fg, stride)
