"""The one interface every 3D backbone of lightly-topo implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lightly_topo.models.errors import InputShapeError


class Backbone3D(ABC, nn.Module):
    """A 3D encoder giving multi-scale dense feature maps and a pooled embedding.

    Subclasses set, in ``__init__``:

    * ``in_channels``: channels of the input volume ``(B, in_channels, D, H, W)``.
    * ``feature_channels``: channels ``C_l`` of each level returned by :meth:`forward_features`.
    * ``feature_strides``: stride ``s_l`` of each level; level ``l`` has spatial size
      ``(D / s_l, H / s_l, W / s_l)``.
    * ``embed_dim``: size of the pooled embedding returned by :meth:`forward`.
    * ``size_divisor``: every input spatial size must be a multiple of it.

    and the class attribute ``name`` (the name under which :func:`lightly_topo.models.build_backbone`
    and checkpoints know it). :attr:`config` returns the keyword arguments that rebuild the
    same architecture, so ``type(m)(**m.config)`` is a fresh copy of ``m``.

    Examples:
        >>> from lightly_topo.models import build_backbone
        >>> net = build_backbone("resenc", features=(8, 16, 32, 64), blocks_per_stage=1)
        >>> feats = net.forward_features(torch.zeros(2, 1, 32, 32, 32))
        >>> [tuple(f.shape) for f in feats][-1], net.feature_strides[-1]
        ((2, 64, 4, 4, 4), 8)
        >>> net(torch.zeros(2, 1, 32, 32, 32)).shape
        torch.Size([2, 64])
    """

    name: ClassVar[str] = ""

    in_channels: int
    feature_channels: tuple[int, ...]
    feature_strides: tuple[int, ...]
    embed_dim: int
    size_divisor: int

    @property
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Keyword arguments (plain Python values) that rebuild this architecture."""

    @abstractmethod
    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Dense feature maps, one per level, from fine to coarse.

        Args:
            x: Input volumes ``(B, in_channels, D, H, W)``; ``D, H, W`` multiples of
                :attr:`size_divisor`.

        Returns:
            A list with one tensor ``(B, C_l, D / s_l, H / s_l, W / s_l)`` per level, with
            ``C_l = feature_channels[l]`` and ``s_l = feature_strides[l]``.
        """

    def pool(self, features: Sequence[Tensor]) -> Tensor:
        """Global average pool of the coarsest level: ``(B, embed_dim)``."""
        return features[-1].mean(dim=(2, 3, 4))

    def forward(self, x: Tensor) -> Tensor:
        """Pooled embedding ``(B, embed_dim)`` of input volumes ``(B, in_channels, D, H, W)``."""
        return self.pool(self.forward_features(x))

    @property
    def num_levels(self) -> int:
        """Number of dense feature levels."""
        return len(self.feature_channels)

    def check_input(self, x: Tensor) -> None:
        """Raises :class:`InputShapeError` unless ``x`` is ``(B, in_channels, D, H, W)`` with
        ``D, H, W`` multiples of :attr:`size_divisor`."""
        if not isinstance(x, torch.Tensor) or x.ndim != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputShapeError(
                f"{type(self).__name__} expects input of shape (B, C, D, H, W), got {shape}."
            )
        if x.shape[1] != self.in_channels:
            raise InputShapeError(
                f"{type(self).__name__} was built for in_channels={self.in_channels} but the input "
                f"(B, C, D, H, W) = {tuple(x.shape)} has C={x.shape[1]}."
            )
        spatial = tuple(int(s) for s in x.shape[2:])
        if any(s % self.size_divisor for s in spatial):
            raise InputShapeError(
                f"{type(self).__name__} needs spatial sizes (D, H, W) divisible by "
                f"{self.size_divisor}, got {spatial}; crop or pad the input (e.g. to "
                f"{tuple(-(-s // self.size_divisor) * self.size_divisor for s in spatial)})."
            )
