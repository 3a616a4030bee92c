"""Vectorised neighbour search, sampling and hinge sums shared by the TACO losses.

Private module. Every search is batched over a leading dim ``P`` (subjects or subject
pairs) and runs without gradient. The chunked helpers (:func:`knn`,
:func:`mutual_nearest_neighbours`, :func:`sampled_dot`) work in chunks of anchors, so
memory is ``O(chunk x N)`` for the search and ``O(anchors x N)`` at most for the losses;
:class:`~lightly_topo.loss._grams.TokenGrams` serves the searches within token sets from
whole Gram matrices where they fit. Gradients flow only through the sampled pairs
(:func:`cosine_at`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lightly_topo.loss import _select

#: Largest number of elements of one chunk of a (P, anchors, N) score matrix.
CHUNK_ELEMENTS = 1 << 24


#: Chunks are this many times larger on a GPU (fewer kernel launches).
CUDA_CHUNK_FACTOR = 4


def _chunk(rows: int, per_row: int, device: torch.device, budget: int | None = None) -> int:
    """Rows per chunk so that a chunk holds at most ``budget`` elements."""
    budget = CHUNK_ELEMENTS if budget is None else budget
    if device.type == "cuda":
        budget *= CUDA_CHUNK_FACTOR
    return max(1, min(rows, budget // max(1, per_row)))


def wants_full_grams(max_tokens: int | None, tokens: int) -> bool:
    """Whether whole Gram matrices pay off: the anchors cover at least half the tokens."""
    return max_tokens is None or 2 * max_tokens >= tokens


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """``x`` (P, N, C) at ``index`` (P, *S) -> (P, *S, C)."""
    p, n, c = x.shape
    offset = torch.arange(p, device=index.device).view(p, *([1] * (index.ndim - 1))) * n
    out = x.reshape(p * n, c).index_select(0, (index + offset).reshape(-1))
    return out.view(*index.shape, c)


#: Largest number of elements of one chunk of gathered (P, anchors, J, C) vectors on CPU
#: (cache sized); on a GPU the search budget is used.
DOT_CHUNK_ELEMENTS = 1 << 20


class _SampledDot(torch.autograd.Function):
    """``out[p, a, j] = <u[p, a], y[p, index[p, a, j]]>``, in chunks of anchors.

    Gathers the ``J`` vectors of a chunk of anchors at a time, forward and backward, so
    the (P, A, J, C) gathered tensor is never held whole (cache friendly, no saved copy).
    """

    @staticmethod
    def forward(ctx: Any, u: Tensor, y: Tensor, index: Tensor) -> Tensor:
        p, a, j = index.shape
        budget = CHUNK_ELEMENTS if u.is_cuda else DOT_CHUNK_ELEMENTS
        step = _chunk(a, p * j * u.shape[-1], u.device, budget)
        out = u.new_empty(p, a, j)
        for start in range(0, a, step):
            stop = min(a, start + step)
            vecs = gather_tokens(y, index[:, start:stop])
            out[:, start:stop] = (u[:, start:stop].unsqueeze(-2) * vecs).sum(-1)
        ctx.save_for_backward(u, y, index)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        u, y, index = ctx.saved_tensors
        p, a, j = index.shape
        n, c = y.shape[1], y.shape[2]
        budget = CHUNK_ELEMENTS if u.is_cuda else DOT_CHUNK_ELEMENTS
        step = _chunk(a, p * j * c, u.device, budget)
        grad_u = torch.empty_like(u) if ctx.needs_input_grad[0] else None
        grad_y = torch.zeros(p * n, c, dtype=y.dtype, device=y.device)
        offset = torch.arange(p, device=index.device).view(p, 1, 1) * n
        for start in range(0, a, step):
            stop = min(a, start + step)
            g = grad[:, start:stop].unsqueeze(-1)
            if grad_u is not None:
                vecs = gather_tokens(y, index[:, start:stop])
                grad_u[:, start:stop] = (g * vecs).sum(-2)
            if ctx.needs_input_grad[1]:
                rows = (g * u[:, start:stop].unsqueeze(-2)).reshape(-1, c)
                flat = (index[:, start:stop] + offset).reshape(-1)
                grad_y.index_add_(0, flat, rows)
        return grad_u, grad_y.view(p, n, c) if ctx.needs_input_grad[1] else None, None


def sampled_dot(u: Tensor, y: Tensor, index: Tensor) -> Tensor:
    """``<u[p, a], y[p, index[p, a, j]]>`` for ``u`` (P, A, C), ``y`` (P, N, C) -> (P, A, J)."""
    out: Tensor = _SampledDot.apply(u, y, index)
    return out


def gather_values(x: Tensor, index: Tensor) -> Tensor:
    """``x`` (P, N) at ``index`` (P, *S) -> (P, *S)."""
    return torch.gather(x, 1, index.reshape(index.shape[0], -1)).reshape(index.shape)


def squared_norms(x: Tensor) -> Tensor:
    """``|x|^2`` over the last dim (..., C) -> (...).

    On CPU as batched dot products: no (..., C) temporary, whose fresh pages cost more than
    the arithmetic there.
    """
    if x.is_cuda:
        return x.pow(2).sum(-1)
    c = x.shape[-1]
    flat = x.reshape(-1, 1, c)
    return torch.bmm(flat, flat.transpose(1, 2)).view(x.shape[:-1])


@torch.no_grad()
def knn(
    x: Tensor,
    anchors: Tensor,
    mask: Tensor,
    k: int,
    metric: str,
    workspace: Workspace | None = None,
    sq: Tensor | None = None,
    normalized: bool = False,
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest valid tokens of each anchor, the anchor excluded.

    Args:
        x: Tokens (P, N, C).
        anchors: Anchor token indices (P, A).
        mask: Valid tokens (P, N).
        k: Number of neighbours.
        metric: ``"euclidean"`` or ``"cosine"``.
        workspace: Where to keep the score chunk between calls (CPU only), or ``None``.
        sq: Squared norms of the tokens (P, N) where known (Euclidean), or ``None``.
        normalized: Whether the tokens are unit vectors already (cosine).

    Returns:
        ``(index, found)``: indices (P, A, k), nearest first, and whether each is a valid
        token other than the anchor (False in the tail where fewer than ``k`` exist).
    """
    p, n, _ = x.shape
    if metric == "cosine":
        x = x if normalized else F.normalize(x, dim=-1)
        bias = torch.zeros(p, 1, n, dtype=x.dtype, device=x.device)
    else:
        bias = (squared_norms(x) if sq is None else sq).unsqueeze(1)
    inf = float("inf")
    bias = bias.masked_fill(~mask.unsqueeze(1), inf)
    # rank by |x_j|^2 - 2 <x_i, x_j> (euclidean) or -<x_i, x_j> on the unit sphere
    scale = -2.0 if metric == "euclidean" else -1.0
    x_t = x.transpose(1, 2)
    width = _select.padded_length(n, k)
    step = _chunk(anchors.shape[1], p * width, x.device)
    buffer = _buffer(workspace, "knn", (p, step, width), x.dtype, x.device)
    buffer[..., n:] = inf
    out, found = [], []
    for start in range(0, anchors.shape[1], step):
        idx = anchors[:, start : start + step]
        block = buffer[:, : idx.shape[1]]
        torch.baddbmm(bias, gather_tokens(x, idx), x_t, alpha=scale, out=block[..., :n])
        block.scatter_(2, idx.unsqueeze(-1), inf)
        values, index = _select.select_k(block.contiguous(), k, largest=False, length=n)
        out.append(index)
        found.append(values < inf)
    return torch.cat(out, 1), torch.cat(found, 1)


class Workspace:
    """Reusable flat buffers, by name, for the large score matrices of the searches.

    Kept by a loss between calls, so that the large matrices reuse memory instead of
    faulting in fresh pages every step (on CPU that costs more than the arithmetic). Used
    on CPU only: on a GPU the caching allocator reuses memory already, and a kept buffer
    would hold it through the next step's forward pass.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(
        self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> Tensor:
        """A contiguous tensor of ``shape`` (uninitialised) backed by the buffer ``name``."""
        numel = 1
        for size in shape:
            numel *= size
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.device != device or buf.numel() < numel:
            self._buffers.pop(name, None)  # free the old one first
            buf = self._buffers[name] = torch.empty(numel, dtype=dtype, device=device)
        return buf[:numel].view(shape)


def _buffer(
    workspace: Workspace | None,
    name: str,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    if workspace is None or device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    return workspace.get(name, shape, dtype, device)


@torch.no_grad()
def mutual_nearest_neighbours(
    xa: Tensor,
    xb: Tensor,
    mask_a: Tensor,
    mask_b: Tensor,
    workspace: Workspace | None = None,
    normalized: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mutual nearest neighbours under cosine distance between two token sets.

    Token ``i`` of ``xa`` and ``u`` of ``xb`` are matched when ``u`` is the nearest valid
    token of ``xb`` to ``i`` (the first one on ties) and ``i`` is a nearest valid token of
    ``xa`` to ``u`` (the smallest such ``i`` on ties). Runs in chunks of rows of the
    (P, N, N) similarity matrix: one row-wise argmax and one column-wise maximum per chunk.

    Args:
        xa, xb: Tokens (P, N, C) of the two sets.
        mask_a, mask_b: Valid tokens (P, N).
        workspace: Where to keep the similarity chunk between calls (CPU only), or ``None``.
        normalized: Whether the tokens are unit vectors already.

    Returns:
        ``(nn_ab, nn_ba, matched_a, matched_b)``: the nearest valid token of ``xb`` for each
        token of ``xa`` (P, N); the partner in ``xa`` of each matched token of ``xb`` (P, N,
        zero where unmatched); and which valid tokens are mutual nearest neighbours (P, N).
    """
    p, n, _ = xa.shape
    an = xa if normalized else F.normalize(xa, dim=-1)
    bn_t = (xb if normalized else F.normalize(xb, dim=-1)).transpose(1, 2)
    neg_inf = float("-inf")
    # on a GPU the masks are always applied (checking them would synchronise)
    mask_cols = xa.is_cuda or not bool(mask_b.all())
    mask_rows = xa.is_cuda or not bool(mask_a.all())
    nn_ab = torch.empty(p, n, dtype=torch.long, device=an.device)
    row_best = torch.empty(p, n, dtype=an.dtype, device=an.device)
    col_best = torch.full((p, n), neg_inf, dtype=an.dtype, device=an.device)
    step = _chunk(n, p * n, an.device)
    buffer = _buffer(workspace, "similarity", (p * step * n,), an.dtype, an.device)
    for start in range(0, n, step):
        stop = min(n, start + step)
        sim = buffer[: p * (stop - start) * n].view(p, stop - start, n)
        torch.bmm(an[:, start:stop], bn_t, out=sim)
        if mask_cols:
            sim.masked_fill_(~mask_b.unsqueeze(1), neg_inf)
        best_values, best_indices = _select.max_k1(sim)
        nn_ab[:, start:stop] = best_indices
        row_best[:, start:stop] = best_values
        if mask_rows:
            sim.masked_fill_(~mask_a[:, start:stop].unsqueeze(-1), neg_inf)
        col_best = torch.maximum(col_best, sim.amax(1))
    arange = torch.arange(n, device=an.device).expand(p, n)
    # i is a candidate where it attains the maximum of the column of its nearest neighbour
    candidate = mask_a & gather_values(mask_b, nn_ab) & (row_best >= gather_values(col_best, nn_ab))
    owner = torch.full((p, n), n, dtype=torch.long, device=an.device)
    owner.scatter_reduce_(1, nn_ab, torch.where(candidate, arange, n), reduce="amin")
    matched_b = mask_b & (owner < n)
    nn_ba = torch.where(matched_b, owner, 0)
    matched_a = candidate & (gather_values(nn_ba, nn_ab) == arange)
    return nn_ab, nn_ba, matched_a, matched_b


def sample_positions(
    mask: Tensor, num: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """A uniform random subset of at most ``num`` valid positions per row, without replacement.

    Args:
        mask: Valid positions (P, N).

    Returns:
        ``(index, valid)``, both (P, min(num, N)); ``valid`` is False where a row has fewer
        than ``num`` valid positions.
    """
    num = min(num, mask.shape[1])
    scores = torch.rand(mask.shape, generator=generator, device=mask.device)
    scores = scores.masked_fill(~mask, -1.0)
    index = scores.topk(num, dim=-1).indices
    return index, gather_values(mask, index)


#: Whether :func:`valid_positions` keeps every position on CPU too (as on a GPU).
FULL_WIDTH_POSITIONS = False


def valid_positions(mask: Tensor) -> tuple[Tensor, Tensor]:
    """All valid positions of each row, in increasing order, padded: (index, valid) (P, A).

    On CPU ``A`` is the largest valid count of a row (at least 1): less work downstream. On a
    GPU ``A = N``: no synchronisation to read the count (the padding is marked invalid).
    """
    order = valid_order(mask)
    if not (mask.is_cuda or FULL_WIDTH_POSITIONS):
        order = order[:, : max(1, int(mask.sum(1).max()))]
    return order, gather_values(mask, order)


def sample_excluding(
    mask: Tensor,
    exclude: Tensor,
    exclude_valid: Tensor,
    num: int,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """Samples valid tokens uniformly with replacement, excluding some tokens per row.

    Args:
        mask: Valid tokens (P, N).
        exclude: Tokens to exclude (P, A, E): distinct valid tokens where ``exclude_valid``.
        exclude_valid: Which entries of ``exclude`` are real (P, A, E).
        num: Samples per row.

    Returns:
        ``(index, count)``: sampled tokens (P, A, num) and the number of tokens they were
        drawn from (P, A). Rows with ``count == 0`` hold arbitrary tokens.
    """
    p, a, e = exclude.shape
    if e == 0:
        count = mask.sum(1, keepdim=True).expand(p, a)
        draw = torch.rand((p, a, num), generator=generator, device=mask.device, dtype=torch.float64)
        r = (draw * count.clamp(min=1).unsqueeze(-1)).long()
        r = torch.minimum(r, (count - 1).clamp(min=0).unsqueeze(-1))
        return gather_values(valid_order(mask), r), count
    rank = torch.cumsum(mask, 1) - 1
    big = mask.shape[1] + e + 1
    excl_rank = gather_values(rank, exclude).masked_fill(~exclude_valid, big)
    excl_rank = excl_rank.sort(-1).values
    count = mask.sum(1, keepdim=True) - exclude_valid.sum(-1)
    draw = torch.rand((p, a, num), generator=generator, device=mask.device, dtype=torch.float64)
    r = (draw * count.clamp(min=1).unsqueeze(-1)).long()
    r = torch.minimum(r, (count - 1).clamp(min=0).unsqueeze(-1))
    # the r-th kept rank is r plus the number of excluded ranks e_m with e_m - m <= r
    shifted = excl_rank - torch.arange(e, device=mask.device)
    t = r + (shifted.unsqueeze(2) <= r.unsqueeze(-1)).sum(-1)
    t = t.clamp(max=mask.shape[1] - 1)
    return gather_values(valid_order(mask, rank), t), count


#: Below this many tokens :func:`valid_order` sorts (fewer operations); above, it scatters
#: ranks (faster than a sort of long rows).
SORT_ORDER_MAX_TOKENS = 512


def valid_order(mask: Tensor, rank: Tensor | None = None) -> Tensor:
    """Positions of the valid entries of each row in increasing order, then the others.

    ``rank`` is ``cumsum(mask, 1) - 1`` if already computed. (P, N) -> (P, N) int64.
    """
    n = mask.shape[1]
    if n < SORT_ORDER_MAX_TOKENS:
        return torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    if rank is None:
        rank = torch.cumsum(mask, 1) - 1
    invalid_rank = mask.sum(1, keepdim=True) + torch.cumsum(~mask, 1) - 1
    slot = torch.where(mask, rank, invalid_rank)
    positions = torch.arange(n, device=mask.device).expand_as(slot)
    return torch.empty_like(slot).scatter_(1, slot, positions)


class _HingeSum(torch.autograd.Function):
    """Sum over valid (positive, negative) pairs of ``relu(d_pos - d_neg + margin)``.

    Forward loops over the ``k`` positives (not over tokens or anchors) and keeps only
    the counts of active pairs for backward, so memory is ``O(anchors x N)``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        d_pos: Tensor,
        d_neg: Tensor,
        pos_valid: Tensor,
        neg_valid: Tensor,
        margin: float,
    ) -> Tensor:
        total = d_pos.new_zeros(d_pos.shape[:-1])
        pos_count = torch.zeros_like(d_pos)
        neg_count = torch.zeros_like(d_neg)
        for j in range(d_pos.shape[-1]):
            diff = d_pos[..., j : j + 1] + margin - d_neg
            active = (diff > 0) & neg_valid & pos_valid[..., j : j + 1]
            total += torch.where(active, diff, 0.0).sum(-1)
            pos_count[..., j] = active.sum(-1)
            neg_count += active
        ctx.save_for_backward(pos_count, neg_count)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        pos_count, neg_count = ctx.saved_tensors
        g = grad.unsqueeze(-1)
        return g * pos_count, -g * neg_count, None, None, None


def hinge_sum(
    d_pos: Tensor, d_neg: Tensor, pos_valid: Tensor, neg_valid: Tensor, margin: float
) -> Tensor:
    """``sum_{j valid, n valid} relu(d_pos[..., j] - d_neg[..., n] + margin)`` -> shape ``(...)``.

    Args:
        d_pos: Distances to positives (..., k).
        d_neg: Distances to every candidate negative (..., N).
        pos_valid: (..., k) bool.
        neg_valid: (..., N) bool.
        margin: Hinge margin.
    """
    out: Tensor = _HingeSum.apply(d_pos, d_neg, pos_valid, neg_valid, margin)
    return out


class _CosineAt(torch.autograd.Function):
    """``out[p, a, j] = cos(x[sets[p], rows[p, a]], x[sets[p], cols[p, a, j]])`` from
    precomputed values.

    The forward returns the given values (computed without gradient, e.g. by
    :class:`~lightly_topo.loss._grams.TokenGrams`). The backward scatters the gradient to
    both unit tokens of every pair with two weighted gathers (``embedding_bag``), without
    materialising (P, A, J, C), and applies the backward of the normalisation in place:
    ``dx = (du - <du, u> u) / |x|``. It never synchronises with a GPU.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        units: Tensor,
        inv_norm: Tensor,
        sets: Tensor,
        rows: Tensor,
        cols: Tensor,
        values: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(units, inv_norm, sets, rows, cols)
        return values.detach().to(x.dtype).clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        units, inv_norm, sets, rows, cols = ctx.saved_tensors
        s, n, c = units.shape
        j = cols.shape[-1]
        none = (None,) * 6
        if cols.numel() == 0:
            return (torch.zeros_like(units), *none)
        offset = (sets * n).view(-1, 1)
        flat_rows = (rows + offset).reshape(-1)
        flat_cols = (cols + offset.unsqueeze(-1)).reshape(-1)
        weights = grad.to(units.dtype).reshape(-1).contiguous()
        table = units.reshape(s * n, c)
        # column side: sum over pairs (a, j) with cols[a, j] = t of g[a, j] u[rows[a]], in
        # one bag per token t (empty bags give zero rows)
        sorted_cols, order = flat_cols.sort()
        offsets = torch.searchsorted(sorted_cols, torch.arange(s * n, device=units.device))
        source = flat_rows.repeat_interleave(j)[order]
        out = F.embedding_bag(source, table, offsets, per_sample_weights=weights[order], mode="sum")
        # row side: sum_j g[a, j] u[cols[a, j]], bags of J
        row_side = F.embedding_bag(
            flat_cols.view(-1, j), table, per_sample_weights=weights.view(-1, j), mode="sum"
        )
        out.index_add_(0, flat_rows, row_side)
        dot = torch.bmm(out.view(s * n, 1, c), table.view(s * n, c, 1)).view(s * n, 1)
        out.addcmul_(table, dot, value=-1.0).mul_(inv_norm.reshape(-1, 1))
        return (out.view(s, n, c), *none)


def cosine_at(
    x: Tensor,
    units: Tensor,
    inv_norm: Tensor,
    sets: Tensor,
    rows: Tensor,
    cols: Tensor,
    values: Tensor,
) -> Tensor:
    """Differentiable ``cos(x[sets[p], rows[p, a]], x[sets[p], cols[p, a, j]])`` (P, A, J).

    Args:
        x: Tokens (S, N, C), the gradient goes to them.
        units: ``x / |x|`` without gradient (S, N, C).
        inv_norm: ``1 / |x|`` (S, N), with ``|x|`` clamped away from zero.
        sets: Set of each row (P,).
        rows: Token of each anchor (P, A).
        cols: Tokens paired with each anchor (P, A, J).
        values: The similarities, computed without gradient (e.g. by
            :class:`~lightly_topo.loss._grams.TokenGrams`).
    """
    out: Tensor = _CosineAt.apply(x, units, inv_norm, sets, rows, cols, values)
    return out
