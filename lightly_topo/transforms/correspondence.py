"""Token correspondence between two views of one subject, from their voxel grids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lightly_topo.transforms.errors import TransformInputError

_CHUNK = 1 << 17


class TokenMatches(NamedTuple):
    """Matched tokens of view A in view B (shapes ``(N_a,)``, or ``(B, N_a)`` for batched grids).

    Attributes:
        index_a: int64: token index in view A (``arange(N_a)``).
        index_b: int64: the token of view B whose centre is nearest to A's token centre
            (meaningful only where ``valid``).
        valid: bool: whether the pair counts as a correspondence (see :func:`matched_tokens`).
        distance: float32: distance between the two token centres, in original voxels.
    """

    index_a: Tensor
    index_b: Tensor
    valid: Tensor
    distance: Tensor


def _stride3(stride: int | Sequence[int]) -> tuple[int, int, int]:
    values = [int(stride)] * 3 if isinstance(stride, int) else [int(s) for s in stride]
    if len(values) != 3 or any(v < 1 for v in values):
        raise TransformInputError(f"stride must be a positive int or three of them, got {stride!r}")
    return (values[0], values[1], values[2])


def _check_grid(grid: Tensor, name: str, stride: tuple[int, int, int]) -> None:
    if not isinstance(grid, Tensor) or grid.dim() not in (4, 5) or grid.shape[-4] != 3:
        shape = tuple(grid.shape) if isinstance(grid, Tensor) else type(grid).__name__
        raise TransformInputError(
            f"{name} must have shape (3, d, h, w) or (B, 3, d, h, w), got {shape}"
        )
    if not grid.is_floating_point():
        raise TransformInputError(f"{name} must be a float32 grid, got dtype {grid.dtype}")
    spatial = tuple(grid.shape[-3:])
    if any(n % s for n, s in zip(spatial, stride)) or any(n < 2 for n in spatial):
        raise TransformInputError(
            f"{name} has spatial shape {spatial}; each size must be at least 2 and divisible by stride {stride}"
        )


def token_centres(grid: Tensor, stride: int | Sequence[int]) -> Tensor:
    """Centre of every token in original voxels: the mean of the grid over the token's
    ``stride`` block, float64 ``(B, 3, d / s, h / s, w / s)`` for a grid ``(B, 3, d, h, w)``."""
    s = _stride3(stride)
    return F.avg_pool3d(grid.float(), kernel_size=s, stride=s).to(torch.float64)


def _mean_jacobian(grid: Tensor) -> Tensor:
    """Mean Jacobian (B, 3, 3) of a grid (B, 3, d, h, w): column k is the mean step in
    original voxels per voxel along view axis k."""
    cols = []
    for k in range(3):  # the mean of forward differences telescopes to last minus first
        n = grid.shape[2 + k]
        last = grid.narrow(2 + k, n - 1, 1).to(torch.float64).mean(dim=(2, 3, 4))
        first = grid.narrow(2 + k, 0, 1).to(torch.float64).mean(dim=(2, 3, 4))
        cols.append((last - first) / (n - 1))
    return torch.stack(cols, dim=-1)


def matched_tokens(
    grid_a: Tensor, grid_b: Tensor, stride: int | Sequence[int], max_iter: int = 16
) -> TokenMatches:
    """Match the tokens of view A to those of view B at feature stride ``stride``.

    Definition (all distances in the subject's original voxels):

    * Views A and B of one subject have grids ``grid_a`` (3, d, h, w) and ``grid_b``
      (3, d', h', w') (or batched ``(B, 3, ...)``). At stride ``s`` a view has
      ``(d/s) * (h/s) * (w/s)`` tokens in C order, token ``t`` covering an ``s^3`` block of
      voxels; its *centre* is the mean of the grid over that block.
    * ``index_b[i]`` is the token of B whose centre is nearest (Euclidean) to A's token
      ``i``'s centre. It is found by mapping A's centre through the inverse of B's mean
      affine map and refining by steepest descent over the 26 neighbours; this is the exact
      nearest centre for affine views and a local nearest one for elastically deformed ones.
    * ``valid[i]`` holds where (1) one token's centre lies in the other's token: the
      difference of the two centres, expressed in B's token coordinates (through B's mean
      Jacobian, i.e. its local voxel spacing, orientation and ``stride``) or in A's, is
      under half a token along every axis. At equal scales this is "under half a token
      apart per axis"; at different scales the finer token's centre must lie inside the
      coarser token. And (2) A's centre lies inside B's field of view: in B's continuous
      token coordinates every component is within ``[-0.5, n - 0.5]``.
    * ``distance[i]`` is the distance between the two centres.

    For affine views (crops, resized crops, flips, rotations, affine maps) all of this is
    exact; for elastically deformed views the Jacobians are the view's mean.

    Args:
        grid_a: Grid of view A, float ``(3, d, h, w)`` or ``(B, 3, d, h, w)``.
        grid_b: Grid of view B, same rank (and batch size) as ``grid_a``.
        stride: Feature stride (int or one per axis); every spatial size must be divisible.
        max_iter: Most refinement steps.

    Returns:
        :class:`TokenMatches` with ``(N_a,)`` (or ``(B, N_a)``) tensors.

    >>> from lightly_topo.transforms.grid import identity_grid
    >>> grid = identity_grid((4, 4, 4))
    >>> m = matched_tokens(grid, grid, stride=2)
    >>> bool(m.valid.all()), bool((m.index_b == m.index_a).all())
    (True, True)
    """
    s = _stride3(stride)
    _check_grid(grid_a, "grid_a", s)
    _check_grid(grid_b, "grid_b", s)
    if grid_a.dim() != grid_b.dim() or (grid_a.dim() == 5 and grid_a.shape[0] != grid_b.shape[0]):
        raise TransformInputError(
            f"grid_a and grid_b must both be (3, d, h, w) or both (B, 3, d, h, w) with the same B, got {tuple(grid_a.shape)} and {tuple(grid_b.shape)}"
        )
    batched = grid_a.dim() == 5
    ga = grid_a if batched else grid_a[None]
    gb = (grid_b if batched else grid_b[None]).to(ga.device)
    dev = ga.device
    bsz = ga.shape[0]
    ca = token_centres(ga, s).flatten(2).transpose(1, 2)  # (B, Na, 3)
    cb_grid = token_centres(gb, s)
    n = torch.tensor(cb_grid.shape[2:], device=dev)
    cb = cb_grid.flatten(2).transpose(1, 2)  # (B, Nb, 3)
    strides = torch.tensor(s, dtype=torch.float64, device=dev)
    jac_a, jac_b = _mean_jacobian(ga), _mean_jacobian(gb)
    lin_b = jac_b * strides  # token index -> original coordinates
    lin_b_inv = torch.linalg.inv(lin_b)
    lin_a_inv = torch.linalg.inv(jac_a * strides)
    idx = (
        torch.stack(
            torch.meshgrid(*[torch.arange(int(k), device=dev) for k in n], indexing="ij"), dim=-1
        )
        .reshape(-1, 3)
        .to(torch.float64)
    )
    origin = cb.mean(1) - torch.einsum("bij,j->bi", lin_b, idx.mean(0))
    # Initial guess: A's centres through the inverse of B's mean affine map.
    u = torch.einsum("bij,bnj->bni", lin_b_inv, ca - origin[:, None])
    cand = u.round().long().clamp(min=torch.zeros_like(n), max=n - 1).reshape(-1, 3)  # (B * Na, 3)
    num_a, num_b = ca.shape[1], cb.shape[1]
    batch_offset = (torch.arange(bsz, device=dev) * num_b).repeat_interleave(num_a)
    # The search compares distances in float32 (coordinates of a few hundred voxels).
    points = ca.reshape(-1, 3).float()
    table = cb.reshape(-1, 3).float().T.contiguous()  # (3, B * Nb)
    offsets = torch.stack(
        torch.meshgrid(*[torch.tensor([0, -1, 1], device=dev)] * 3, indexing="ij"), dim=-1
    ).reshape(-1, 3)
    sizes = [int(k) for k in n]
    for start in range(0, points.shape[0], _CHUNK):
        active = torch.arange(start, min(start + _CHUNK, points.shape[0]), device=dev)
        for _ in range(max_iter):  # steepest descent over the 26 neighbours
            cur = cand[active]
            nb = [(cur[:, k, None] + offsets[:, k]).clamp_(0, sizes[k] - 1) for k in range(3)]
            flat = (nb[0] * sizes[1] + nb[1]) * sizes[2] + nb[2] + batch_offset[active, None]
            d2 = torch.zeros(flat.shape, dtype=torch.float32, device=dev)
            for k in range(3):
                diff = table[k][flat] - points[active, k, None]
                d2.addcmul_(diff, diff)
            best = d2.argmin(1, keepdim=True)
            new = torch.cat([torch.gather(c, 1, best) for c in nb], dim=1)
            changed = (new != cur).any(1)
            cand[active] = new
            active = active[changed]
            if active.numel() == 0:
                break
    cand = cand.reshape(bsz, num_a, 3)
    flat = (cand[..., 0] * n[1] + cand[..., 1]) * n[2] + cand[..., 2]
    centre_b = torch.gather(cb, 1, flat[:, :, None].expand(-1, -1, 3))
    distance = ((centre_b - ca) ** 2).sum(-1).sqrt()
    in_b = torch.einsum("bij,bnj->bni", lin_b_inv, ca - centre_b)  # in B's token units
    in_a = torch.einsum("bij,bnj->bni", lin_a_inv, centre_b - ca)  # in A's token units
    close = (in_b.abs() < 0.5).all(-1) | (in_a.abs() < 0.5).all(-1)
    cont = cand.to(torch.float64) + in_b  # A's centre in B's continuous token coordinates
    inside = ((cont >= -0.5) & (cont <= n.to(torch.float64) - 0.5)).all(-1)
    valid = close & inside
    index = flat
    index_a = torch.arange(ca.shape[1], device=dev).expand(bsz, -1)
    out = TokenMatches(index_a, index, valid, distance.to(torch.float32))
    return out if batched else TokenMatches(*(t[0] for t in out))
