"""Masked-input reconstruction for any backbone (CNN, Swin, ViT without token dropping).

As in nnssl's masked-image-modelling pretraining of 3D CNNs: random cubic patches of the
input are zeroed, the backbone encodes the masked volume, a light decoder reconstructs the
input from the multi-scale features, and the loss is the mean squared error on the masked
voxels only.

- He et al., Masked Autoencoders Are Scalable Vision Learners, 2022,
  https://arxiv.org/abs/2111.06377
- Wald et al., An OpenMind for 3D medical vision self-supervised learning (nnssl), 2025,
  https://arxiv.org/abs/2412.17041
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def random_patch_mask(
    shape: Sequence[int], patch: int, ratio: float, device: torch.device | str | None = None
) -> Tensor:
    """Random voxel mask made of cubic patches, ``True`` where the input is hidden.

    Per sample, ``round(ratio * n_patches)`` of the ``patch``-sized cells are masked (uses the
    global RNG; the methods reseed it every step).

    Args:
        shape: ``(B, D, H, W)``; ``D, H, W`` multiples of ``patch``.
        patch: Edge of the cells in voxels.
        ratio: Fraction of cells masked, in ``(0, 1)``.
        device: Device of the mask.

    Returns:
        Bool tensor ``(B, 1, D, H, W)``.

    Example:
        >>> mask = random_patch_mask((2, 16, 16, 16), patch=4, ratio=0.5)
        >>> mask.shape, float(mask.float().mean())
        (torch.Size([2, 1, 16, 16, 16]), 0.5)
    """
    b, d, h, w = (int(s) for s in shape)
    if d % patch or h % patch or w % patch:
        raise ValueError(
            f"random_patch_mask: spatial size {(d, h, w)} must be divisible by the mask patch "
            f"{patch}; set loss.mask_patch to a divisor of data.crop_size."
        )
    grid = (d // patch, h // patch, w // patch)
    cells = grid[0] * grid[1] * grid[2]
    n_mask = min(cells - 1, max(1, round(ratio * cells)))
    noise = torch.rand(b, cells, device=device)
    order = noise.argsort(dim=1)
    masked = torch.zeros(b, cells, dtype=torch.bool, device=device)
    masked.scatter_(1, order[:, :n_mask], True)
    masked = masked.view(b, 1, *grid)
    for axis in (2, 3, 4):
        masked = masked.repeat_interleave(patch, dim=axis)
    return masked


class MultiScaleDecoder(nn.Module):
    """Light decoder from multi-scale features ``(B, C_l, D/s_l, ...)`` to a volume.

    Every level at least as coarse as the output level is projected to ``width`` channels
    (1x1x1 conv), upsampled trilinearly to the output level and summed; after a GELU a
    1x1x1 conv predicts the ``out_channels * s**3`` voxels of each position's ``s^3`` cell
    (as MAE's linear patch head), rearranged (voxel shuffle) into the full-resolution
    volume. The output level is the finest one with stride at least 2 (or the finest, if
    all are coarser), which keeps the decoder cheap.

    Args:
        feature_channels: Channels of every level, fine to coarse.
        feature_strides: Strides of every level.
        out_channels: Channels of the reconstructed volume.
        width: Channels inside the decoder.

    Example:
        >>> dec = MultiScaleDecoder((8, 16, 32), (1, 2, 4), out_channels=1, width=16)
        >>> feats = [torch.zeros(2, 8, 16, 16, 16), torch.zeros(2, 16, 8, 8, 8),
        ...          torch.zeros(2, 32, 4, 4, 4)]
        >>> dec(feats).shape
        torch.Size([2, 1, 16, 16, 16])
    """

    def __init__(
        self,
        feature_channels: Sequence[int],
        feature_strides: Sequence[int],
        out_channels: int = 1,
        width: int = 32,
    ) -> None:
        super().__init__()
        strides = [int(s) for s in feature_strides]
        candidates = [i for i, s in enumerate(strides) if s >= 2]
        self.out_level = candidates[0] if candidates else len(strides) - 1
        self.stride = strides[self.out_level]
        self.levels = [i for i in range(len(strides)) if i >= self.out_level]
        self.out_channels = int(out_channels)
        self.lateral = nn.ModuleList(
            [nn.Conv3d(int(feature_channels[i]), width, kernel_size=1) for i in self.levels]
        )
        self.fuse = nn.Sequential(
            nn.GELU(),
            nn.Conv3d(width, out_channels * self.stride**3, kernel_size=1),
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        target = features[self.out_level].shape[2:]
        x: Tensor | None = None
        for lateral, level in zip(self.lateral, self.levels):
            y = lateral(features[level])
            if y.shape[2:] != target:
                y = F.interpolate(y, size=target, mode="trilinear", align_corners=False)
            x = y if x is None else x + y
        assert x is not None
        x = self.fuse(x)
        s = self.stride
        if s == 1:
            return x
        b, _, d, h, w = x.shape
        x = x.view(b, self.out_channels, s, s, s, d, h, w)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
        return x.reshape(b, self.out_channels, d * s, h * s, w * s)


def masked_mse(prediction: Tensor, target: Tensor, voxel_mask: Tensor) -> Tensor:
    """Mean squared error over the masked voxels (``voxel_mask`` broadcast over channels).

    Computed in float32 (safe under bf16 autocast).
    """
    weight = voxel_mask.to(torch.float32).expand_as(target)
    error = (prediction.float() - target.float()) ** 2
    return (error * weight).sum() / weight.sum().clamp_min(1.0)
