"""Swin-UNETR encoder (MONAI's ``SwinTransformer``) as a lightly-topo backbone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai.networks.nets.swin_unetr import SwinTransformer
from torch import Tensor

from lightly_topo.models.base import Backbone3D
from lightly_topo.models.errors import ModelConfigError


class SwinBackbone(Backbone3D):
    """The Swin Transformer encoder of Swin-UNETR, the backbone of the TACO paper.

    Wraps :class:`monai.networks.nets.swin_unetr.SwinTransformer` under the attribute
    ``swinViT``, exactly as :class:`monai.networks.nets.SwinUNETR` does, so its weights load
    into a MONAI ``SwinUNETR`` unchanged (see :func:`lightly_topo.checkpoint.load_into_monai_swinunetr`).

    Five levels: the patch embedding and the outputs of the four Swin stages, with channels
    ``(f, 2f, 4f, 8f, 16f)`` for ``f = feature_size`` and strides
    ``(p, 2p, 4p, 8p, 16p)`` for ``p = patch_size``. Inputs must be divisible by ``16p``
    (32 for the default ``patch_size=2``).

    - Hatamizadeh et al., Swin UNETR: Swin Transformers for Semantic Segmentation of Brain
      Tumors in MRI Images, 2022, https://arxiv.org/abs/2201.01266

    Args:
        in_channels: Input channels (1 for the shared per-modality encoder).
        feature_size: Channels of the first level; 48 in the paper, 12 or 24 on CPU. Each
            stage's channels ``feature_size * 2**i`` must be divisible by its head count, and
            ``SwinUNETR`` itself asks for a multiple of 12.
        depths: Swin blocks per stage.
        num_heads: Attention heads per stage.
        window_size: Attention window (per axis).
        patch_size: Patch embedding size (per axis).
        mlp_ratio: MLP hidden size relative to the channels.
        drop_path_rate: Stochastic depth rate.
        normalize: Layer-normalise each level's output (as ``SwinUNETR`` does).
        use_checkpoint: Gradient checkpointing in the Swin blocks.
        use_v2: Swin-UNETR v2 (a residual conv block before each stage).

    Examples:
        >>> import torch
        >>> net = SwinBackbone(feature_size=12, depths=(1, 1, 1, 1))
        >>> [f.shape[1] for f in net.forward_features(torch.zeros(1, 1, 32, 32, 32))]
        [12, 24, 48, 96, 192]
        >>> net.feature_strides, net.embed_dim
        ((2, 4, 8, 16, 32), 192)
    """

    name = "swin"

    def __init__(
        self,
        in_channels: int = 1,
        feature_size: int = 48,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        patch_size: int = 2,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        normalize: bool = True,
        use_checkpoint: bool = False,
        use_v2: bool = False,
    ) -> None:
        super().__init__()
        depths, num_heads = tuple(int(d) for d in depths), tuple(int(h) for h in num_heads)
        if len(depths) != 4 or len(num_heads) != 4:
            raise ModelConfigError(
                f"swin: depths and num_heads need 4 entries (one per stage), got depths={depths}, "
                f"num_heads={num_heads}."
            )
        for i, heads in enumerate(num_heads):
            dim = feature_size * 2**i
            if heads < 1 or dim % heads:
                raise ModelConfigError(
                    f"swin: stage {i} has {dim} channels (feature_size={feature_size} * 2**{i}), "
                    f"not divisible by num_heads[{i}]={heads}; choose feature_size a multiple of "
                    f"12 with the default heads (3, 6, 12, 24)."
                )
        if in_channels < 1 or patch_size < 1 or window_size < 1:
            raise ModelConfigError(
                f"swin: in_channels, patch_size and window_size must be positive, got "
                f"{in_channels}, {patch_size}, {window_size}."
            )
        self._config: dict[str, Any] = {
            "in_channels": int(in_channels),
            "feature_size": int(feature_size),
            "depths": list(depths),
            "num_heads": list(num_heads),
            "window_size": int(window_size),
            "patch_size": int(patch_size),
            "mlp_ratio": float(mlp_ratio),
            "drop_path_rate": float(drop_path_rate),
            "normalize": bool(normalize),
            "use_checkpoint": bool(use_checkpoint),
            "use_v2": bool(use_v2),
        }
        self.in_channels = int(in_channels)
        self.normalize = bool(normalize)
        self.swinViT = SwinTransformer(
            in_chans=in_channels,
            embed_dim=feature_size,
            window_size=(window_size,) * 3,
            patch_size=(patch_size,) * 3,
            depths=depths,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=True,
            drop_path_rate=drop_path_rate,
            use_checkpoint=use_checkpoint,
            spatial_dims=3,
            downsample="merging",
            use_v2=use_v2,
        )
        self.feature_channels = tuple(feature_size * 2**i for i in range(5))
        self.feature_strides = tuple(patch_size * 2**i for i in range(5))
        self.embed_dim = self.feature_channels[-1]
        self.size_divisor = self.feature_strides[-1]

    @property
    def config(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, list) else v for k, v in self._config.items()}

    def forward_features(self, x: Tensor) -> list[Tensor]:
        self.check_input(x)
        return list(self.swinViT(x, self.normalize))
