"""Helpers of the transform tests: small coordinate-encoding volumes and items."""

from __future__ import annotations

import torch

from lightly_topo.transforms.grid import identity_grid


def coordinate_volume(shape: tuple[int, int, int]) -> torch.Tensor:
    """float32 (3, D, H, W) whose voxels hold their own (d, h, w) coordinates."""
    return identity_grid(shape)


def index_labels(shape: tuple[int, int, int]) -> torch.Tensor:
    """int64 (1, D, H, W) holding each voxel's flat C-order index."""
    return torch.arange(shape[0] * shape[1] * shape[2]).view(1, *shape)


def inside(grid: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """bool (..., d, h, w): voxels whose grid lies inside the volume."""
    upper = torch.tensor(shape, dtype=grid.dtype).view(3, *([1] * (grid.dim() - 1)))
    return ((grid >= 0) & (grid <= upper - 1)).all(0)


def make_item(
    shape: tuple[int, int, int] = (20, 18, 16),
    names: tuple[str, ...] = ("t1", "t1ce", "t2", "flair"),
    present: tuple[str, ...] | None = None,
    labels: bool = True,
    seed: int = 0,
) -> dict:
    """A VolumeItem: modality m holds coordinates encoded as d + 100 h + 10000 w + 1e6 m."""
    present = names if present is None else present
    grid = identity_grid(shape)
    base = grid[0] + 100 * grid[1] + 10000 * grid[2]
    images = {n: (base + 1e6 * i)[None].clone() for i, n in enumerate(names) if n in present}
    return {
        "subject_id": f"sub-{seed}",
        "session": None,
        "images": images,
        "mask": torch.tensor([n in present for n in names]),
        "modality_names": names,
        "label_map": index_labels(shape) if labels else None,
        "labels": {},
        "affine": torch.eye(4, dtype=torch.float64),
    }
