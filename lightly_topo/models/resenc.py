"""A 3D residual CNN encoder in the style of nnU-Net's ResEnc, built from MONAI blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai.networks.blocks import Convolution, UnetResBlock
from torch import Tensor, nn

from lightly_topo.models.base import Backbone3D
from lightly_topo.models.errors import ModelConfigError


class ResEncBackbone(Backbone3D):
    """Residual 3D CNN encoder (nnU-Net ResEnc style); the fast backbone on CPU.

    A stem convolution (conv - norm - LeakyReLU) followed by one stage per entry of
    ``features``. Stage ``i`` opens with a residual block of stride ``strides[i]``
    (:class:`monai.networks.blocks.UnetResBlock`: two 3x3x3 convolutions with instance norm and
    LeakyReLU, and a strided 1x1x1 projection on the skip path) and adds
    ``blocks_per_stage[i] - 1`` more residual blocks of stride 1. Each stage's output is one
    level: channels ``features``, strides the running product of ``strides``.

    - Isensee et al., nnU-Net Revisited: A Call for Rigorous Validation in 3D Medical Image
      Segmentation, 2024, https://arxiv.org/abs/2404.09556

    Args:
        in_channels: Input channels (1 for the shared per-modality encoder).
        features: Channels of each stage. The default is a light encoder for CPU runs;
            nnU-Net's ResEnc-M uses ``(32, 64, 128, 256, 320, 320)`` with
            ``blocks_per_stage=(1, 3, 4, 6, 6, 6)``.
        blocks_per_stage: Residual blocks per stage (an int applies to every stage).
        strides: Stride of each stage's first block; default ``(1, 2, 2, ...)``, nnU-Net's
            layout with a full-resolution first level. On CPU, ``(2, 2, 2, 2, 2)`` (the strides
            ``(2, 4, 8, 16, 32)`` of ``swin``) makes a step several times cheaper.
        kernel_size: Convolution kernel size.
        norm_name: MONAI normalisation name (``"instance"``, ``"batch"``, ``"group"``, ...).

    Examples:
        >>> net = ResEncBackbone(features=(8, 16, 32), blocks_per_stage=1)
        >>> net.feature_strides, net.embed_dim
        ((1, 2, 4), 32)
    """

    name = "resenc"

    def __init__(
        self,
        in_channels: int = 1,
        features: Sequence[int] = (16, 32, 64, 128, 256),
        blocks_per_stage: int | Sequence[int] = (1, 2, 2, 2, 2),
        strides: Sequence[int] | None = None,
        kernel_size: int = 3,
        norm_name: str = "instance",
    ) -> None:
        super().__init__()
        features = tuple(int(f) for f in features)
        n = len(features)
        if n < 1 or any(f < 1 for f in features):
            raise ModelConfigError(
                f"resenc: features must be positive channel counts, got {features}."
            )
        blocks = (
            (int(blocks_per_stage),) * n
            if isinstance(blocks_per_stage, int)
            else tuple(int(b) for b in blocks_per_stage)
        )
        strides_t = (1,) + (2,) * (n - 1) if strides is None else tuple(int(s) for s in strides)
        if len(blocks) != n or len(strides_t) != n:
            raise ModelConfigError(
                f"resenc: features {features}, blocks_per_stage {blocks} and strides {strides_t} "
                f"must have the same length."
            )
        if any(b < 1 for b in blocks) or any(s < 1 for s in strides_t):
            raise ModelConfigError(
                f"resenc: blocks_per_stage and strides must be >= 1, got {blocks} and {strides_t}."
            )
        self._config: dict[str, Any] = {
            "in_channels": int(in_channels),
            "features": list(features),
            "blocks_per_stage": list(blocks),
            "strides": list(strides_t),
            "kernel_size": int(kernel_size),
            "norm_name": str(norm_name),
        }
        act = ("leakyrelu", {"inplace": True, "negative_slope": 0.01})
        self.in_channels = int(in_channels)
        self.stem = Convolution(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=features[0],
            kernel_size=kernel_size,
            act=act,
            norm=norm_name,
        )
        stages = []
        previous = features[0]
        for channels, num_blocks, stride in zip(features, blocks, strides_t):
            stage = [
                UnetResBlock(3, previous, channels, kernel_size, stride, norm_name, act_name=act)
            ]
            stage += [
                UnetResBlock(3, channels, channels, kernel_size, 1, norm_name, act_name=act)
                for _ in range(num_blocks - 1)
            ]
            stages.append(nn.Sequential(*stage))
            previous = channels
        self.stages = nn.ModuleList(stages)
        cumulative = []
        total = 1
        for s in strides_t:
            total *= s
            cumulative.append(total)
        self.feature_channels = features
        self.feature_strides = tuple(cumulative)
        self.embed_dim = features[-1]
        self.size_divisor = cumulative[-1]

    @property
    def config(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, list) else v for k, v in self._config.items()}

    def forward_features(self, x: Tensor) -> list[Tensor]:
        self.check_input(x)
        out = []
        h = self.stem(x)
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out
