"""Cut 3D volumes into flattened cubic patches and back (the MAE reconstruction targets)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from lightly_topo.models.errors import InputShapeError


def patchify3d(images: Tensor, patch_size: int) -> Tensor:
    """Flattens volumes ``(B, C, D, H, W)`` into patches ``(B, N, p**3 * C)``.

    Patches are in the token order of :class:`~lightly_topo.models.ViT3D` (C order over the
    ``(D/p, H/p, W/p)`` grid); each patch is flattened in ``(pd, ph, pw, C)`` order, the 3D
    analogue of Lightly's ``utils.patchify``.

    Examples:
        >>> import torch
        >>> patchify3d(torch.zeros(2, 1, 32, 32, 32), 8).shape
        torch.Size([2, 64, 512])
    """
    if images.ndim != 5:
        raise InputShapeError(f"patchify3d expects (B, C, D, H, W), got {tuple(images.shape)}.")
    b, c, d, h, w = images.shape
    p = int(patch_size)
    if d % p or h % p or w % p:
        raise InputShapeError(
            f"patchify3d: spatial size {(d, h, w)} is not divisible by patch_size={p}."
        )
    x = images.reshape(b, c, d // p, p, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)
    return x.reshape(b, (d // p) * (h // p) * (w // p), p**3 * c)


def unpatchify3d(
    patches: Tensor, patch_size: int, grid: Sequence[int], channels: int = 1
) -> Tensor:
    """Inverse of :func:`patchify3d`: ``(B, N, p**3 * C)`` to ``(B, C, D, H, W)``.

    Args:
        patches: Flattened patches.
        patch_size: Cubic patch size ``p``.
        grid: Patch grid ``(D/p, H/p, W/p)``.
        channels: Channels ``C``.
    """
    gd, gh, gw = (int(g) for g in grid)
    p = int(patch_size)
    b, n, k = patches.shape
    if n != gd * gh * gw or k != p**3 * channels:
        raise InputShapeError(
            f"unpatchify3d: patches {tuple(patches.shape)} do not match grid {(gd, gh, gw)}, "
            f"patch_size={p} and channels={channels}."
        )
    x = patches.reshape(b, gd, gh, gw, p, p, p, channels)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, channels, gd * p, gh * p, gw * p)
