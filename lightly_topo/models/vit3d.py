"""A 3D Vision Transformer implementing Lightly's ``MaskedVisionTransformer`` (MAE-ready)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightly.models import utils
from lightly.models.modules.masked_vision_transformer import MaskedVisionTransformer
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from lightly_topo.models.base import Backbone3D
from lightly_topo.models.errors import InputShapeError, ModelConfigError
from lightly_topo.models.pos_embed import get_3d_sincos_pos_embed, resample_pos_embed_3d


def _triple(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    out = (int(value),) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(out) != 3 or any(v < 1 for v in out):
        raise ModelConfigError(
            f"vit: {name} must be a positive int or 3 positive ints, got {value}."
        )
    return out


class ViT3D(Backbone3D, MaskedVisionTransformer):
    """3D ViT with cubic patches, token masking and token dropping, for MAE and friends.

    Implements Lightly's
    :class:`~lightly.models.modules.masked_vision_transformer.MaskedVisionTransformer` interface
    (``encode``, ``preprocess``, ``forward_intermediates``, ``idx_mask``/``idx_keep``/``mask``,
    ``sequence_length`` and ``mask_token``), so Lightly's token utilities
    (``utils.random_token_mask``, ``utils.get_at_index``, ...) work unchanged, and the
    lightly-topo :class:`Backbone3D` interface. Tokens are the ``(D/p, H/p, W/p)`` patch grid in
    C order, after an optional class token at index 0.

    Use it where Lightly's 2D recipes build ``MaskedVisionTransformerTIMM(vit=...)``: it *is*
    the masked vision transformer (that wrapper expects a timm 2D ViT whose ``patch_embed``
    has a ``proj`` and is not needed here). For the decoder use
    :class:`~lightly_topo.models.MAEDecoder3D`, and :func:`~lightly_topo.models.patchify3d`
    for the targets: Lightly's ``MaskedVisionTransformerDecoderTIMM`` runs on 3D tokens
    without error but adds a 2D positional embedding, and ``utils.patchify`` takes 4D images
    only. Lightly's ImageNet learning rate (1.5e-4) is sized for long schedules on large
    batches; the MAE recipe in ``docs/examples/mae_topo_pytorch.py`` states the rate it uses
    at small scales and the loss it measured.

    The positional embedding is a true 3D sine-cosine embedding (``pos_embed="sincos"``,
    fixed and recomputed for any input grid) or a learned one (``"learn"``, resampled
    trilinearly for other grids). Masked tokens are mixed with the mask token and the positional
    embedding is added in the tokens' own dtype promotion, so it runs under bf16 autocast.

    Dense features are the token grids after the blocks named in ``feature_blocks`` (final
    layer norm applied), reshaped to ``(B, embed_dim, D/p, H/p, W/p)``; all levels have stride
    ``patch_size``. The pooled embedding is the mean of the final patch tokens.

    - Dosovitskiy et al., An Image is Worth 16x16 Words, 2021, https://arxiv.org/abs/2010.11929
    - He et al., Masked Autoencoders Are Scalable Vision Learners, 2022,
      https://arxiv.org/abs/2111.06377

    Args:
        in_channels: Input channels.
        img_size: Default input size ``(D, H, W)`` (an int for a cube); other sizes divisible by
            ``patch_size`` work too.
        patch_size: Cubic patch size.
        embed_dim: Token size; even and >= 6 with ``pos_embed="sincos"``.
        depth: Transformer blocks.
        num_heads: Attention heads; must divide ``embed_dim``.
        mlp_ratio: MLP hidden size relative to ``embed_dim``.
        qkv_bias: Bias in the attention projections.
        class_token: Prepend a class token (Lightly's masking utilities assume one prefix token
            by default).
        pos_embed: ``"sincos"`` (fixed 3D) or ``"learn"``.
        drop_path_rate: Stochastic depth rate (linearly increasing over the blocks).
        feature_blocks: Indices of the blocks whose outputs are the dense levels (default: the
            last block only).

    Attributes:
        patch_size: The cubic patch size ``p`` (also every level's stride).
        grid_size: Patch grid ``(D/p, H/p, W/p)`` of ``img_size``.
        num_patches: Patches of ``img_size``, the product of ``grid_size``.
        num_prefix_tokens: 1 with a class token, else 0; patch tokens follow it.
        sequence_length: ``num_patches + num_prefix_tokens``, the length Lightly's
            ``utils.random_token_mask`` takes.

    Examples:
        >>> vit = ViT3D(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
        >>> x = torch.zeros(2, 1, 32, 32, 32)
        >>> idx_keep, idx_mask = utils.random_token_mask((2, vit.sequence_length), 0.75)
        >>> vit.encode(x, idx_keep=idx_keep).shape
        torch.Size([2, 17, 48])
        >>> vit.forward_features(x)[0].shape
        torch.Size([2, 48, 4, 4, 4])
    """

    name = "vit"
    pos_embed: Tensor

    def __init__(
        self,
        in_channels: int = 1,
        img_size: int | Sequence[int] = 96,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        class_token: bool = True,
        pos_embed: str = "sincos",
        drop_path_rate: float = 0.0,
        feature_blocks: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        img = _triple(img_size, "img_size")
        if patch_size < 1 or any(s % patch_size for s in img):
            raise ModelConfigError(
                f"vit: img_size {img} must be divisible by patch_size={patch_size}."
            )
        if depth < 1 or num_heads < 1 or embed_dim % num_heads:
            raise ModelConfigError(
                f"vit: need depth >= 1 and embed_dim divisible by num_heads, got depth={depth}, "
                f"embed_dim={embed_dim}, num_heads={num_heads}."
            )
        if pos_embed not in ("sincos", "learn"):
            raise ModelConfigError(
                f"vit: pos_embed must be 'sincos' or 'learn', got {pos_embed!r}."
            )
        blocks_out = [depth - 1] if feature_blocks is None else [int(b) for b in feature_blocks]
        blocks_out = sorted({b % depth if -depth <= b < depth else b for b in blocks_out})
        if not blocks_out or any(not 0 <= b < depth for b in blocks_out):
            raise ModelConfigError(
                f"vit: feature_blocks must be block indices in [-{depth}, {depth}), got "
                f"{feature_blocks}."
            )
        self._config: dict[str, Any] = {
            "in_channels": int(in_channels),
            "img_size": list(img),
            "patch_size": int(patch_size),
            "embed_dim": int(embed_dim),
            "depth": int(depth),
            "num_heads": int(num_heads),
            "mlp_ratio": float(mlp_ratio),
            "qkv_bias": bool(qkv_bias),
            "class_token": bool(class_token),
            "pos_embed": pos_embed,
            "drop_path_rate": float(drop_path_rate),
            "feature_blocks": list(blocks_out),
        }
        self.in_channels = int(in_channels)
        self.img_size = img
        self.patch_size = int(patch_size)
        self.grid_size: tuple[int, int, int] = tuple(s // patch_size for s in img)  # type: ignore[assignment]
        self.num_patches = self.grid_size[0] * self.grid_size[1] * self.grid_size[2]
        self.num_prefix_tokens = int(class_token)
        self.pos_embed_type = pos_embed
        self.feature_blocks = tuple(blocks_out)

        self.patch_embed = nn.Conv3d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if pos_embed == "sincos":
            fixed = get_3d_sincos_pos_embed(self.grid_size, embed_dim).unsqueeze(0)
            self.register_buffer("pos_embed", fixed, persistent=False)
        else:
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, embed_dim))
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.Sequential(
            *[
                Block(
                    embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=dpr[i]
                )
                for i in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

        self.embed_dim = int(embed_dim)
        self.feature_channels = (self.embed_dim,) * len(blocks_out)
        self.feature_strides = (self.patch_size,) * len(blocks_out)
        self.size_divisor = self.patch_size
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        if isinstance(self.pos_embed, nn.Parameter):
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def config(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, list) else v for k, v in self._config.items()}

    @property
    def sequence_length(self) -> int:
        """Tokens (prefix included) of an input of the default ``img_size``."""
        return self.num_patches + self.num_prefix_tokens

    def token_grid(self, images: Tensor) -> tuple[int, int, int]:
        """Patch grid ``(D/p, H/p, W/p)`` of ``images``; checks the input shape."""
        self.check_input(images)
        return tuple(int(s) // self.patch_size for s in images.shape[2:])  # type: ignore[return-value]

    def images_to_tokens(self, images: Tensor) -> Tensor:
        """Patch tokens ``(B, N, embed_dim)`` of ``images`` ``(B, C, D, H, W)``, C order."""
        self.check_input(images)
        return self.patch_embed(images).flatten(2).transpose(1, 2)

    def prepend_prefix_tokens(self, x: Tensor) -> Tensor:
        if self.cls_token is None:
            return x
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)

    def patch_pos_embed(self, grid: Sequence[int] | None = None) -> Tensor:
        """Positional embedding ``(1, N, embed_dim)`` of the patch tokens of ``grid``."""
        grid_t = self.grid_size if grid is None else tuple(int(g) for g in grid)
        if grid_t == self.grid_size:
            return self.pos_embed
        if self.pos_embed_type == "sincos":
            return get_3d_sincos_pos_embed(
                grid_t, self.embed_dim, device=self.pos_embed.device
            ).unsqueeze(0)
        return resample_pos_embed_3d(self.pos_embed, self.grid_size, grid_t)

    def add_pos_embed(self, x: Tensor, grid: Sequence[int] | None = None) -> Tensor:
        """Adds the positional embedding to the patch tokens of ``x`` (prefix tokens included
        in ``x``, left unchanged); ``grid`` defaults to the grid of ``img_size``."""
        pos = self.patch_pos_embed(grid)
        n = self.num_prefix_tokens
        if x.shape[1] - n != pos.shape[1]:
            raise InputShapeError(
                f"vit: got {x.shape[1] - n} patch tokens but the grid {grid or self.grid_size} "
                f"has {pos.shape[1]}."
            )
        return torch.cat([x[:, :n], x[:, n:] + pos], dim=1)

    def preprocess(
        self,
        images: Tensor,
        idx_mask: Tensor | None = None,
        idx_keep: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Tokens with prefix, masking and positional embedding, then ``idx_keep`` selection.

        Same contract as Lightly's ``MaskedVisionTransformer.preprocess``; indices count the
        prefix token (index 0 is the class token when ``class_token=True``).
        """
        if idx_mask is not None and mask is not None:
            raise ValueError("vit: idx_mask and mask cannot both be set.")
        grid = self.token_grid(images)
        tokens = self.prepend_prefix_tokens(self.images_to_tokens(images))
        if idx_mask is not None:
            tokens = utils.mask_at_index(tokens, idx_mask, self.mask_token.to(tokens.dtype))
        elif mask is not None:
            tokens = utils.mask_bool(tokens, mask, self.mask_token.to(tokens.dtype))
        tokens = self.add_pos_embed(tokens, grid)
        if idx_keep is not None:
            tokens = utils.get_at_index(tokens, idx_keep)
        return tokens

    def encode(
        self,
        images: Tensor,
        idx_mask: Tensor | None = None,
        idx_keep: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Encoded tokens ``(B, n, embed_dim)`` (prefix first; only ``idx_keep`` if given)."""
        tokens = self.preprocess(images, idx_mask=idx_mask, idx_keep=idx_keep, mask=mask)
        return self.norm(self.blocks(tokens))

    def forward_intermediates(
        self,
        images: Tensor,
        idx_mask: Tensor | None = None,
        idx_keep: Tensor | None = None,
        norm: bool = False,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Final normalised tokens and the tokens after every block (normalised if ``norm``)."""
        tokens = self.preprocess(images, idx_mask=idx_mask, idx_keep=idx_keep, mask=mask)
        intermediates = []
        for block in self.blocks:
            tokens = block(tokens)
            intermediates.append(self.norm(tokens) if norm else tokens)
        return self.norm(tokens), intermediates

    def forward(
        self,
        images: Tensor,
        idx_mask: Tensor | None = None,
        idx_keep: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Pooled embedding ``(B, embed_dim)``: the mean of the (kept) final patch tokens."""
        tokens = self.encode(images, idx_mask=idx_mask, idx_keep=idx_keep, mask=mask)
        return tokens[:, self.num_prefix_tokens :].mean(dim=1)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        grid = self.token_grid(x)
        tokens = self.preprocess(x)
        out = []
        last = self.feature_blocks[-1]
        for i, block in enumerate(self.blocks):
            if i > last:
                break
            tokens = block(tokens)
            if i in self.feature_blocks:
                patches = self.norm(tokens)[:, self.num_prefix_tokens :]
                out.append(patches.transpose(1, 2).reshape(x.shape[0], self.embed_dim, *grid))
        return out
