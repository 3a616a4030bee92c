"""A 3D MAE decoder for :class:`~lightly_topo.models.ViT3D`, safe under bf16 autocast."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightly.models import utils
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from lightly_topo.models.errors import ModelConfigError
from lightly_topo.models.pos_embed import get_3d_sincos_pos_embed


class MAEDecoder3D(nn.Module):
    """Decoder of a masked autoencoder on 3D patch tokens.

    The 3D counterpart of Lightly's ``MAEDecoderTIMM``: embeds the encoder's kept tokens,
    fills the dropped positions with a mask token, adds a fixed 3D sine-cosine positional
    embedding, runs transformer blocks and predicts the ``p**3 * in_channels`` voxels of each
    requested patch (compare with :func:`~lightly_topo.models.patchify3d` of the input).
    Unlike ``utils.set_at_index(mask_tokens, idx_keep, x)`` on mixed dtypes, :meth:`forward`
    scatters in one dtype, so it runs under ``torch.autocast(dtype=torch.bfloat16)``.

    - He et al., Masked Autoencoders Are Scalable Vision Learners, 2022,
      https://arxiv.org/abs/2111.06377

    Args:
        grid_size: Default patch grid ``(D/p, H/p, W/p)``.
        patch_size: Cubic patch size ``p``.
        in_channels: Channels of the reconstructed volume.
        embed_dim: Token size of the encoder.
        decoder_embed_dim: Token size inside the decoder (even, >= 6).
        decoder_depth: Transformer blocks.
        decoder_num_heads: Attention heads.
        mlp_ratio: MLP hidden size relative to ``decoder_embed_dim``.
        num_prefix_tokens: Prefix (class) tokens in the encoder's sequence.

    Examples:
        >>> dec = MAEDecoder3D((4, 4, 4), 8, embed_dim=48, decoder_embed_dim=24,
        ...                    decoder_depth=1, decoder_num_heads=2)
        >>> idx_keep, idx_mask = utils.random_token_mask((2, 65), 0.75)
        >>> dec(torch.zeros(2, idx_keep.shape[1], 48), idx_keep, idx_mask).shape
        torch.Size([2, 48, 512])
    """

    pos_embed: Tensor

    def __init__(
        self,
        grid_size: int | Sequence[int],
        patch_size: int,
        in_channels: int = 1,
        embed_dim: int = 768,
        decoder_embed_dim: int = 384,
        decoder_depth: int = 4,
        decoder_num_heads: int = 12,
        mlp_ratio: float = 4.0,
        num_prefix_tokens: int = 1,
    ) -> None:
        super().__init__()
        grid = (
            (int(grid_size),) * 3
            if isinstance(grid_size, int)
            else tuple(int(g) for g in grid_size)
        )
        if len(grid) != 3 or decoder_embed_dim % decoder_num_heads:
            raise ModelConfigError(
                f"MAEDecoder3D: need a 3D grid_size and decoder_embed_dim divisible by "
                f"decoder_num_heads, got grid_size={grid_size}, decoder_embed_dim="
                f"{decoder_embed_dim}, decoder_num_heads={decoder_num_heads}."
            )
        self.grid_size: tuple[int, ...] = grid
        self.patch_size = int(patch_size)
        self.in_channels = int(in_channels)
        self.num_prefix_tokens = int(num_prefix_tokens)
        self.decoder_embed_dim = int(decoder_embed_dim)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.register_buffer(
            "pos_embed",
            get_3d_sincos_pos_embed(
                grid, decoder_embed_dim, num_prefix_tokens=num_prefix_tokens
            ).unsqueeze(0),
            persistent=False,
        )
        self.blocks = nn.Sequential(
            *[
                Block(decoder_embed_dim, decoder_num_heads, mlp_ratio=mlp_ratio, qkv_bias=True)
                for _ in range(decoder_depth)
            ]
        )
        self.norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.prediction_head = nn.Linear(decoder_embed_dim, patch_size**3 * in_channels)
        nn.init.normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def embed(self, x: Tensor) -> Tensor:
        """Projects encoder tokens ``(B, n, embed_dim)`` to ``(B, n, decoder_embed_dim)``."""
        return self.decoder_embed(x)

    def decode(self, x: Tensor, grid: Sequence[int] | None = None) -> Tensor:
        """Full sequence ``(B, prefix + N, decoder_embed_dim)`` through the decoder blocks."""
        grid_t = self.grid_size if grid is None else tuple(int(g) for g in grid)
        pos: Tensor = self.pos_embed
        if grid_t != self.grid_size:
            pos = get_3d_sincos_pos_embed(
                grid_t,
                self.decoder_embed_dim,
                num_prefix_tokens=self.num_prefix_tokens,
                device=x.device,
            ).unsqueeze(0)
        return self.norm(self.blocks(x + pos))

    def predict(self, x: Tensor) -> Tensor:
        """Voxel predictions ``(B, n, p**3 * in_channels)`` of decoded tokens."""
        return self.prediction_head(x)

    def forward(
        self,
        x_encoded: Tensor,
        idx_keep: Tensor,
        idx_mask: Tensor,
        grid: Sequence[int] | None = None,
    ) -> Tensor:
        """Predicts the patches at ``idx_mask`` from the encoder tokens at ``idx_keep``.

        Args:
            x_encoded: Encoder output ``(B, n_keep, embed_dim)`` for the tokens ``idx_keep``.
            idx_keep: ``(B, n_keep)`` sequence indices (prefix tokens count) that were encoded.
            idx_mask: ``(B, n_mask)`` sequence indices to predict.
            grid: Patch grid of the input (default ``grid_size``).

        Returns:
            Tensor ``(B, n_mask, p**3 * in_channels)``; the targets are
            ``utils.get_at_index(patchify3d(images, p), idx_mask - num_prefix_tokens)``.
        """
        x = self.embed(x_encoded)
        grid_t = self.grid_size if grid is None else tuple(int(g) for g in grid)
        length = self.num_prefix_tokens + grid_t[0] * grid_t[1] * grid_t[2]
        full = self.mask_token.to(x.dtype).expand(x.shape[0], length, -1)
        full = utils.set_at_index(full, idx_keep, x)
        decoded = self.decode(full, grid_t)
        return self.predict(utils.get_at_index(decoded, idx_mask))
