"""Random flips along each spatial axis."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lightly_topo.transforms.grid import Shape3
from lightly_topo.transforms.random import bernoulli, check_probability
from lightly_topo.transforms.spatial import SpatialStep, SpatialTransform3D


class RandomFlip3D(SpatialTransform3D):
    """Flip each axis in ``axes`` independently with probability ``p`` (no interpolation).

    Args:
        axes: Spatial axes that may flip (0 = D, 1 = H, 2 = W).
        p: Probability per axis.
        seed: Seed of the transform's own generator.

    >>> flip = RandomFlip3D(axes=(2,), p=1.0)
    >>> flip(torch.arange(2.0).view(1, 1, 1, 2).expand(1, 2, 2, 2), generator=0).image[0, 0, 0].tolist()
    [1.0, 0.0]
    """

    def __init__(
        self, axes: Sequence[int] = (0, 1, 2), p: float = 0.5, seed: int | None = None
    ) -> None:
        super().__init__(seed)
        if any(a not in (0, 1, 2) for a in axes):
            raise ValueError(f"axes must be spatial axes among (0, 1, 2), got {tuple(axes)}")
        self.axes = tuple(int(a) for a in axes)
        self.p = check_probability("p", p)

    def sample_step(self, in_shape: Shape3, generator: torch.Generator) -> SpatialStep:
        flips = bernoulli(generator, self.p, (len(self.axes),))
        m = torch.eye(4, dtype=torch.float64)
        for axis, flip in zip(self.axes, flips.tolist()):
            if flip:
                m[axis, axis] = -1.0
                m[axis, 3] = in_shape[axis] - 1
        return SpatialStep(in_shape, in_shape, m)
