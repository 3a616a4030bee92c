"""The brain foreground of an item and of its views, and its tokens at a feature stride."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lightly_topo.transforms.grid import sample
from lightly_topo.transforms.spatial import Resampler


def channels_foreground(channels: Sequence[Tensor | None]) -> Tensor:
    """Voxels where any available channel ``(1, D, H, W)`` is non-zero: bool ``(1, D, H, W)``.

    The datasets z-score over the foreground and keep the background at 0, so this is the
    brain (or head) of a preprocessed item.
    """
    present = [c for c in channels if c is not None]
    if not present:
        raise ValueError("channels_foreground needs at least one available channel")
    fg = torch.zeros(present[0].shape, dtype=torch.bool, device=present[0].device)
    for channel in present:
        fg |= channel != 0
    return fg


def resample_foreground(foreground: Tensor, grid: Tensor) -> Tensor:
    """``foreground`` bool ``(1, D, H, W)`` read at a view's ``grid`` ``(3, d, h, w)``
    (nearest neighbour; outside the volume is background): bool ``(1, d, h, w)``. The plain
    reference of :func:`view_foreground`."""
    return sample(foreground.float()[None], grid[None], mode="nearest")[0] > 0.5


def view_foreground(
    channels: Sequence[Tensor | None], resampled: Tensor, resampler: Resampler
) -> Tensor:
    """The foreground of ``channels`` at ``resampler``'s grid, bool ``(1, d, h, w)``: equal to
    ``resample_foreground(channels_foreground(channels), resampler.grid)`` (tested).

    Where the spatial map is exact (crops, flips, 90-degree rotations) the resampled
    channels ``resampled`` ``(M, d, h, w)``, before intensity augmentation, hold the same
    voxels, so their non-zero voxels are the foreground (no full-size pass); otherwise the
    item's foreground is resampled nearest-neighbour.
    """
    if resampler.perm is not None:
        return (resampled != 0).any(0, keepdim=True)
    return resampler(channels_foreground(channels), mode="nearest")


def foreground_tokens(foreground: Tensor, stride: int, min_fraction: float = 0.5) -> Tensor:
    """Tokens of a feature map at ``stride`` whose cell of ``stride^3`` voxels is at least
    ``min_fraction`` foreground: the ``mask`` for the TACO losses.

    Args:
        foreground: bool ``(B, 1, D, H, W)``, e.g. a batch of views' ``"foreground"``.
        stride: The feature map's stride in voxels (``encoder.stride(level)``).
        min_fraction: Share of a cell that must be foreground.

    Returns:
        bool ``(B, N)``, ``N = (D // stride) * (H // stride) * (W // stride)``, C order (the
        token order of ``x.flatten(2).transpose(1, 2)``).

    >>> fg = torch.zeros(1, 1, 4, 4, 4, dtype=torch.bool)
    >>> fg[..., :2, :2, :2] = True
    >>> foreground_tokens(fg, stride=2).tolist()
    [[True, False, False, False, False, False, False, False]]
    """
    if foreground.dim() != 5 or foreground.shape[1] != 1:
        raise ValueError(
            f"foreground must be (B, 1, D, H, W), got {tuple(foreground.shape)}; "
            "stack the views' 'foreground' (collate_views does)"
        )
    if stride == 1:
        return foreground.flatten(1).bool()
    frac = F.avg_pool3d(foreground.float(), kernel_size=stride, stride=stride)
    return (frac >= min_fraction).flatten(1)
