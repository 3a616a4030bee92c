"""Random rotations by multiples of 90 degrees."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lightly_topo.transforms.grid import Shape3, as_shape3
from lightly_topo.transforms.random import bernoulli, check_probability, randint
from lightly_topo.transforms.spatial import SpatialStep, SpatialTransform3D


def rot90_matrix(k: int, plane: tuple[int, int], in_shape: Shape3) -> tuple[torch.Tensor, Shape3]:
    """Matrix and output shape of ``torch.rot90(x, k, dims=plane)`` on a ``(D, H, W)`` volume."""
    a, b = plane
    k = k % 4
    m = torch.eye(4, dtype=torch.float64)
    out = list(in_shape)
    if k == 1:  # in[a] = j, in[b] = S_b - 1 - i
        m[a, a], m[a, b] = 0.0, 1.0
        m[b, b], m[b, a], m[b, 3] = 0.0, -1.0, in_shape[b] - 1
        out[a], out[b] = in_shape[b], in_shape[a]
    elif k == 2:
        m[a, a], m[a, 3] = -1.0, in_shape[a] - 1
        m[b, b], m[b, 3] = -1.0, in_shape[b] - 1
    elif k == 3:  # in[a] = S_a - 1 - j, in[b] = i
        m[a, a], m[a, b], m[a, 3] = 0.0, -1.0, in_shape[a] - 1
        m[b, b], m[b, a] = 0.0, 1.0
        out[a], out[b] = in_shape[b], in_shape[a]
    return m, (out[0], out[1], out[2])


def square_planes(size: Sequence[int]) -> list[tuple[int, int]]:
    """The planes in which a volume of ``size`` keeps its shape under a 90-degree rotation."""
    return [(a, b) for a, b in ((0, 1), (0, 2), (1, 2)) if size[a] == size[b]]


class RandomRotate90_3D(SpatialTransform3D):
    """With probability ``p``, rotate by ``k * 90`` degrees (``k`` uniform in ``1..max_k``) in
    a plane drawn uniformly from ``planes`` (no interpolation), as ``torch.rot90``.

    In a plane whose two sizes differ, the two sizes swap; the batched path needs equal
    output shapes, so crop to a cube first.

    Args:
        p: Probability of rotating.
        max_k: Largest number of quarter turns (1 to 3).
        planes: Candidate planes as pairs of spatial axes (0 = D, 1 = H, 2 = W).
        seed: Seed of the transform's own generator.
    """

    def __init__(
        self,
        p: float = 0.5,
        max_k: int = 3,
        planes: Sequence[tuple[int, int]] = ((0, 1), (0, 2), (1, 2)),
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.p = check_probability("p", p)
        if not 1 <= max_k <= 3:
            raise ValueError(f"max_k must be 1, 2 or 3, got {max_k}")
        self.max_k = int(max_k)
        self.planes = [(int(a), int(b)) for a, b in planes]
        if not self.planes or any(a == b or {a, b} - {0, 1, 2} for a, b in self.planes):
            raise ValueError(f"planes must be pairs of distinct axes among (0, 1, 2), got {planes}")

    def sample_step(self, in_shape: Shape3, generator: torch.Generator) -> SpatialStep:
        apply = bool(bernoulli(generator, self.p))
        k = randint(generator, 1, self.max_k)
        plane = self.planes[randint(generator, 0, len(self.planes) - 1)]
        if not apply:
            return SpatialStep(in_shape, in_shape, torch.eye(4, dtype=torch.float64))
        m, out = rot90_matrix(k, plane, in_shape)
        return SpatialStep(in_shape, out, m)


def rotate90(size: int | Sequence[int], p: float) -> list[RandomRotate90_3D]:
    """A :class:`RandomRotate90_3D` restricted to the square planes of ``size`` (after a
    crop to ``size``), or nothing if there is none or ``p`` is 0."""
    shape = as_shape3(size)
    planes = square_planes(shape)
    return [RandomRotate90_3D(p=p, planes=planes)] if planes and p > 0 else []
