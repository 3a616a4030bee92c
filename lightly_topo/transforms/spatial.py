"""The spatial-transform contract: parameters as sampling maps, composed into one grid.

A spatial transform does not resample anything itself. Given the shape it receives, it
draws a :class:`SpatialStep`: a map from its output voxels to its input voxels (a ``(4, 4)``
matrix plus, for elastic deformation, a displacement field). A :class:`SpatialCompose3D`
chains the steps of several transforms into :class:`SpatialParams`, turns them into one grid
(the coordinates of every output voxel in the original volume, see
:mod:`lightly_topo.transforms.grid`) and resamples the original volume *once*. The same
parameters drive the per-subject CPU path and the batched device path
(:class:`~lightly_topo.transforms.BatchAugment3D`).

All modalities of a subject and its label map (nearest neighbour) go through the same grid:
one draw per subject, shared across modalities.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lightly_topo.transforms.errors import TransformError, TransformInputError
from lightly_topo.transforms.grid import (
    Shape3,
    apply_matrix,
    as_shape3,
    matrix_grid,
    normalize_grid,
    sample,
    signed_permutation,
    take_permuted,
)
from lightly_topo.transforms.random import GeneratorLike, RandomState, resolve_generator


@dataclass(frozen=True)
class SpatialStep:
    """The map one spatial transform draws: output voxel -> input voxel coordinates.

    ``input = matrix @ (output + displacement(output), 1)``, where ``displacement`` is
    sampled trilinearly from a control grid spanning the output volume (corner control
    points on corner voxels).

    Attributes:
        in_shape: Spatial shape the transform receives.
        out_shape: Spatial shape it produces.
        matrix: float64 ``(4, 4)``.
        displacement: float32 ``(3, gd, gh, gw)`` in output voxels, or ``None``.
    """

    in_shape: Shape3
    out_shape: Shape3
    matrix: Tensor
    displacement: Tensor | None = None


@dataclass(frozen=True)
class SpatialParams:
    """The drawn parameters of a chain of spatial transforms (``steps[0]`` acts first on the
    original volume)."""

    steps: tuple[SpatialStep, ...]

    @property
    def in_shape(self) -> Shape3:
        return self.steps[0].in_shape

    @property
    def out_shape(self) -> Shape3:
        return self.steps[-1].out_shape

    def matrix(self) -> Tensor | None:
        """The composed ``(4, 4)`` matrix, or ``None`` if a step deforms elastically."""
        if any(s.displacement is not None for s in self.steps):
            return None
        m = torch.eye(4, dtype=torch.float64)
        for step in self.steps:
            m = m @ step.matrix
        return m

    def grid(self, device: torch.device | str | None = None) -> Tensor:
        """The grid, float32 ``(3, d, h, w)``: original coordinates of every output voxel."""
        return batch_grid([self], device)[0]


class SpatialResult(NamedTuple):
    """A resampled volume with its grid (and label map)."""

    image: Tensor
    grid: Tensor
    label_map: Tensor | None


def _group_steps(params: Sequence[SpatialParams]) -> list[tuple[Tensor, Tensor | None, Shape3]]:
    """Per group of steps: stacked matrices (B, 4, 4), stacked displacements or ``None``,
    and the group's output shape. Consecutive matrix-only steps are multiplied together."""
    first = params[0]
    for p in params[1:]:
        same = len(p.steps) == len(first.steps) and all(
            a.out_shape == b.out_shape
            and a.in_shape == b.in_shape
            and (a.displacement is None) == (b.displacement is None)
            for a, b in zip(p.steps, first.steps)
        )
        if not same:
            raise TransformError(
                "batched spatial parameters must share their shapes and step structure; got "
                f"output shapes {first.out_shape} and {p.out_shape}. Crop to a fixed cubic "
                "size before shape-changing steps (e.g. RandomRotate90_3D)."
            )
    groups: list[tuple[Tensor, Tensor | None, Shape3]] = []
    mats = torch.eye(4, dtype=torch.float64).repeat(len(params), 1, 1)
    for index, step in enumerate(first.steps):
        mats = mats @ torch.stack([p.steps[index].matrix.to(torch.float64) for p in params])
        if step.displacement is not None:
            disp = torch.stack([p.steps[index].displacement for p in params])  # type: ignore[misc]
            groups.append((mats, disp, step.out_shape))
            mats = torch.eye(4, dtype=torch.float64).repeat(len(params), 1, 1)
    groups.append((mats, None, first.out_shape))
    return groups


def _displace(grid: Tensor, field: Tensor, shape: Shape3) -> Tensor:
    """``grid + field(grid)``: ``field`` (B, 3, g, g, g) spans a volume of ``shape``."""
    scale = torch.tensor([2.0 / max(n - 1, 1) for n in shape], device=grid.device)
    norm = (grid * scale.view(1, 3, 1, 1, 1) - 1.0).permute(0, 2, 3, 4, 1).flip(-1)
    disp = F.grid_sample(
        field.to(grid.device, torch.float32),
        norm,
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return grid + disp


def batch_grid(params: Sequence[SpatialParams], device: torch.device | str | None = None) -> Tensor:
    """The grids of several parameter sets of one pipeline, float32 ``(B, 3, d, h, w)``.

    All heavy work is batched: one matrix product per group of affine steps and one
    ``grid_sample`` per elastic step, whatever ``B``.
    """
    groups = _group_steps(params)
    mats, _, shape = groups[-1]
    grid = matrix_grid(mats.to(device), shape)
    for mats, disp, shape in reversed(groups[:-1]):
        assert disp is not None
        grid = apply_matrix(mats, _displace(grid, disp, shape))
    return grid


class Resampler:
    """Resample volumes of one subject with one :class:`SpatialParams`: the grid (or the
    exact index map) is computed once and reused for every modality and the label map.

    Chains of crops, flips and 90-degree rotations (a matrix that only permutes, flips and
    shifts by whole voxels) are done exactly by indexing; everything else by
    :func:`~lightly_topo.transforms.grid.sample` (trilinear, nearest for label maps).
    Voxels outside the original volume are zero.
    """

    def __init__(self, params: SpatialParams, device: torch.device | str | None = None) -> None:
        self.params = params
        matrix = params.matrix()
        self.perm = None if matrix is None else signed_permutation(matrix)
        if matrix is not None:
            self.grid = matrix_grid(matrix.to(device), params.out_shape)
        else:
            self.grid = params.grid(device)
        self._normalized: Tensor | None = None

    def __call__(self, volume: Tensor, mode: str = "bilinear", copy: bool = True) -> Tensor:
        """Resample ``volume`` (C, D, H, W); integer volumes keep their dtype. With
        ``copy=False`` the result of an exact resampling may be a view of ``volume``."""
        if self.perm is not None:
            out = take_permuted(volume, self.perm, self.params.out_shape)
            return out.clone(memory_format=torch.contiguous_format) if copy else out
        if self._normalized is None:
            self._normalized = normalize_grid(self.grid[None], self.params.in_shape)
        norm = self._normalized.to(volume.device)
        if volume.dtype == torch.float32:
            out = F.grid_sample(
                volume[None], norm, mode=mode, padding_mode="zeros", align_corners=True
            )
            return out[0]
        return sample(volume[None], self.grid[None].to(volume.device), mode=mode)[0]


def resample(volume: Tensor, params: SpatialParams, mode: str = "bilinear") -> Tensor:
    """Resample ``volume`` (C, D, H, W) once with ``params`` (see :class:`Resampler`)."""
    return Resampler(params, volume.device)(volume, mode)


def check_volume(volume: Tensor, name: str = "volume") -> Tensor:
    """``volume`` if it is a floating ``(C, D, H, W)`` tensor with ``D, H, W >= 2``."""
    if not isinstance(volume, Tensor):
        raise TransformInputError(
            f"{name} must be a torch.Tensor of shape (C, D, H, W), got {type(volume).__name__}"
        )
    if volume.dim() != 4:
        raise TransformInputError(
            f"{name} must have shape (C, D, H, W), got shape {tuple(volume.shape)}"
        )
    if not volume.is_floating_point():
        raise TransformInputError(
            f"{name} must be a floating-point (float32) tensor of shape (C, D, H, W), got dtype {volume.dtype}"
        )
    if min(volume.shape[1:]) < 2:
        raise TransformInputError(
            f"{name} must have at least 2 voxels along D, H and W, got shape {tuple(volume.shape)}"
        )
    return volume


def check_label_map(
    label_map: Tensor | None, spatial: Sequence[int], name: str = "label_map"
) -> None:
    """Raise unless ``label_map`` is ``None`` or an integer ``(1, D, H, W)`` on ``spatial``."""
    if label_map is None:
        return
    if not isinstance(label_map, Tensor) or label_map.dim() != 4 or label_map.shape[0] != 1:
        shape = (
            tuple(label_map.shape) if isinstance(label_map, Tensor) else type(label_map).__name__
        )
        raise TransformInputError(f"{name} must have shape (1, D, H, W), got {shape}")
    if label_map.is_floating_point() or label_map.dtype == torch.bool:
        raise TransformInputError(
            f"{name} must be an int64 tensor of shape (1, D, H, W), got dtype {label_map.dtype}"
        )
    if tuple(label_map.shape[1:]) != tuple(spatial):
        raise TransformInputError(
            f"{name} has spatial shape {tuple(label_map.shape[1:])}, the image has {tuple(spatial)}"
        )


class SpatialTransform3D(ABC):
    """Base class of the spatial transforms.

    Subclasses implement :meth:`sample_step`. Calling a transform on a ``(C, D, H, W)``
    volume returns a :class:`SpatialResult` ``(image, grid, label_map)``.

    Args:
        seed: Seed of the transform's own generator, used when a call passes none.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.random_state = RandomState(seed)

    @abstractmethod
    def sample_step(self, in_shape: Shape3, generator: torch.Generator) -> SpatialStep:
        """Draw the map for an input of spatial shape ``in_shape``."""

    def __call__(
        self, volume: Tensor, label_map: Tensor | None = None, generator: GeneratorLike = None
    ) -> SpatialResult:
        return SpatialCompose3D([self])(volume, label_map=label_map, generator=generator)


class SpatialCompose3D:
    """Chain spatial transforms; the original volume is resampled once.

    Args:
        transforms: Applied in order to the original volume.
        seed: Seed of the compose's own generator, used when a call passes none.

    >>> from lightly_topo.transforms import RandomCrop3D, RandomFlip3D
    >>> compose = SpatialCompose3D([RandomCrop3D(4), RandomFlip3D(p=0.5)])
    >>> out = compose(torch.zeros(2, 6, 6, 6), generator=0)
    >>> tuple(out.image.shape), tuple(out.grid.shape)
    ((2, 4, 4, 4), (3, 4, 4, 4))
    """

    def __init__(self, transforms: Sequence[SpatialTransform3D], seed: int | None = None) -> None:
        self.transforms = list(transforms)
        self.random_state = RandomState(seed)

    def sample_params(
        self, in_shape: Sequence[int], generator: GeneratorLike = None
    ) -> SpatialParams:
        """Draw the steps of every transform for an original volume of ``in_shape``."""
        gen = resolve_generator(generator, self.random_state)
        shape = as_shape3(tuple(in_shape), "in_shape")
        steps = []
        for transform in self.transforms:
            step = transform.sample_step(shape, gen)
            steps.append(step)
            shape = step.out_shape
        if not steps:
            steps.append(SpatialStep(shape, shape, torch.eye(4, dtype=torch.float64)))
        return SpatialParams(tuple(steps))

    def apply(
        self, volume: Tensor, params: SpatialParams, label_map: Tensor | None = None
    ) -> SpatialResult:
        """Resample ``volume`` (C, D, H, W) and ``label_map`` (1, D, H, W) with ``params``."""
        check_volume(volume)
        check_label_map(label_map, volume.shape[1:])
        if tuple(volume.shape[1:]) != params.in_shape:
            raise TransformInputError(
                f"volume has spatial shape {tuple(volume.shape[1:])}, the parameters were drawn for {params.in_shape}"
            )
        resampler = Resampler(params, volume.device)
        image = resampler(volume)
        labels = None if label_map is None else resampler(label_map, mode="nearest")
        return SpatialResult(image, resampler.grid, labels)

    def __call__(
        self, volume: Tensor, label_map: Tensor | None = None, generator: GeneratorLike = None
    ) -> SpatialResult:
        check_volume(volume)
        params = self.sample_params(volume.shape[1:], generator)
        return self.apply(volume, params, label_map)
