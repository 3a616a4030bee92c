"""Fixed 3D sine-cosine positional embeddings for token grids ``(D/p, H/p, W/p)``.

Lightly's ``initialize_2d_sine_cosine_positional_embedding`` infers a square 2D grid from the
token count, so a 3D grid of 4x4x4 = 64 tokens silently gets an 8x8 2D embedding; MONAI's
``build_sincos_position_embedding`` needs an embedding size divisible by 6. The functions here
build a true 3D embedding for any even embedding size of at least 6.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lightly_topo.models.errors import ModelConfigError


def axis_frequencies(embed_dim: int) -> tuple[int, int, int]:
    """Number of sine-cosine frequency pairs given to the ``D``, ``H`` and ``W`` axes.

    The ``embed_dim / 2`` pairs are split as evenly as possible, the first axes getting one more
    where ``embed_dim / 2`` is not a multiple of 3 (so no channel is left as zero padding).

    Raises:
        ModelConfigError: If ``embed_dim`` is odd or smaller than 6.
    """
    if embed_dim < 6 or embed_dim % 2:
        raise ModelConfigError(
            f"a 3D sine-cosine positional embedding needs an even embed_dim >= 6 (a sine and a "
            f"cosine for each of the 3 axes), got embed_dim={embed_dim}."
        )
    pairs = embed_dim // 2
    return tuple(pairs // 3 + (1 if i < pairs % 3 else 0) for i in range(3))  # type: ignore[return-value]


def get_3d_sincos_pos_embed(
    grid_size: int | Sequence[int],
    embed_dim: int,
    *,
    num_prefix_tokens: int = 0,
    temperature: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """3D sine-cosine positional embedding of a ``(gd, gh, gw)`` token grid.

    Channels are laid out as ``[sin(D), cos(D), sin(H), cos(H), sin(W), cos(W)]``, each block
    with the frequencies ``1 / temperature ** (k / F)`` for ``k < F`` (``F`` from
    :func:`axis_frequencies`), as in MAE's 2D embedding. Tokens are in C order
    (``x.flatten(2).transpose(1, 2)`` of a ``(B, C, gd, gh, gw)`` map). The dot product of two
    tokens' embeddings depends only on their grid offset.

    Args:
        grid_size: Token grid ``(gd, gh, gw)`` (an int for a cube).
        embed_dim: Embedding size; even and >= 6.
        num_prefix_tokens: Zero rows prepended for class or register tokens.
        temperature: Base of the frequency progression.
        device: Device of the result.
        dtype: Dtype of the result.

    Returns:
        Tensor ``(num_prefix_tokens + gd * gh * gw, embed_dim)``.

    Examples:
        >>> get_3d_sincos_pos_embed(4, 48).shape
        torch.Size([64, 48])
    """
    grid = (int(grid_size),) * 3 if isinstance(grid_size, int) else tuple(int(g) for g in grid_size)
    if len(grid) != 3 or any(g < 1 for g in grid):
        raise ModelConfigError(f"grid_size must be 3 positive sizes (gd, gh, gw), got {grid_size}.")
    freqs = axis_frequencies(embed_dim)
    coords = torch.meshgrid(
        *(torch.arange(g, dtype=torch.float64) for g in grid), indexing="ij"
    )  # each (gd, gh, gw)
    parts = []
    for axis_coords, num in zip(coords, freqs):
        omega = 1.0 / temperature ** (torch.arange(num, dtype=torch.float64) / num)
        angles = axis_coords.reshape(-1, 1) * omega.reshape(1, -1)  # (N, num)
        parts += [torch.sin(angles), torch.cos(angles)]
    emb = torch.cat(parts, dim=1)
    if num_prefix_tokens:
        emb = torch.cat([emb.new_zeros(num_prefix_tokens, embed_dim), emb], dim=0)
    return emb.to(device=device, dtype=dtype)


def resample_pos_embed_3d(
    pos_embed: Tensor, old_grid: Sequence[int], new_grid: Sequence[int]
) -> Tensor:
    """Trilinearly resamples a learned patch-token embedding ``(1, N, C)`` to a new grid.

    Args:
        pos_embed: Embedding ``(1, gd * gh * gw, C)`` of the grid ``old_grid``, C order.
        old_grid: ``(gd, gh, gw)`` of ``pos_embed``.
        new_grid: Target ``(gd', gh', gw')``.

    Returns:
        Tensor ``(1, gd' * gh' * gw', C)``.
    """
    old, new = tuple(int(g) for g in old_grid), tuple(int(g) for g in new_grid)
    if old == new:
        return pos_embed
    c = pos_embed.shape[-1]
    volume = pos_embed.reshape(1, *old, c).permute(0, 4, 1, 2, 3)
    volume = F.interpolate(volume, size=new, mode="trilinear", align_corners=False)
    return volume.flatten(2).transpose(1, 2)
