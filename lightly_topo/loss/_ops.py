"""Vectorised neighbour search, sampling and hinge sums shared by the TACO losses.

Private module. Every search is batched over a leading dim ``P`` (subjects or subject
pairs) and runs without gradient. :class:`TokenGrams` keeps one Gram matrix per token set
whole when they fit :data:`GRAM_BYTES` and serves every search and similarity of both
TACO terms from it; otherwise (and for the chunked helpers :func:`knn`,
:func:`mutual_nearest_neighbours`, :func:`sampled_dot`) searches run in chunks of
anchors, so memory is ``O(chunk x N)`` for the search and ``O(anchors x N)`` at most for
the losses. Gradients flow only through the sampled pairs (:func:`cosine_at`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

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


@torch.no_grad()
def knn(x: Tensor, anchors: Tensor, mask: Tensor, k: int, metric: str) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest valid tokens of each anchor, the anchor excluded.

    Args:
        x: Tokens (P, N, C).
        anchors: Anchor token indices (P, A).
        mask: Valid tokens (P, N).
        k: Number of neighbours.
        metric: ``"euclidean"`` or ``"cosine"``.

    Returns:
        ``(index, found)``: indices (P, A, k), nearest first, and whether each is a valid
        token other than the anchor (False in the tail where fewer than ``k`` exist).
    """
    p, n, _ = x.shape
    if metric == "cosine":
        x = F.normalize(x, dim=-1)
        bias = torch.zeros(p, 1, n, dtype=x.dtype, device=x.device)
    else:
        bias = x.pow(2).sum(-1).unsqueeze(1)
    bias = bias.masked_fill(~mask.unsqueeze(1), float("inf"))
    out, found = [], []
    step = _chunk(anchors.shape[1], p * n, x.device)
    for start in range(0, anchors.shape[1], step):
        idx = anchors[:, start : start + step]
        # rank by |x_j|^2 - 2 <x_i, x_j> (euclidean) or -<x_i, x_j> on the unit sphere
        scale = -2.0 if metric == "euclidean" else -1.0
        score = torch.baddbmm(bias, gather_tokens(x, idx), x.transpose(1, 2), alpha=scale)
        score.scatter_(2, idx.unsqueeze(-1), float("inf"))
        top = score.topk(k, dim=-1, largest=False, sorted=True)
        out.append(top.indices)
        found.append(top.values < float("inf"))
    return torch.cat(out, 1), torch.cat(found, 1)


@torch.no_grad()
def mutual_nearest_neighbours(
    xa: Tensor, xb: Tensor, mask_a: Tensor, mask_b: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mutual nearest neighbours under cosine distance between two token sets.

    Token ``i`` of ``xa`` and ``u`` of ``xb`` are matched when ``u`` is the nearest valid
    token of ``xb`` to ``i`` (the first one on ties) and ``i`` is a nearest valid token of
    ``xa`` to ``u`` (the smallest such ``i`` on ties). Runs in chunks of rows of the
    (P, N, N) similarity matrix: one row-wise argmax and one column-wise maximum per chunk.

    Args:
        xa, xb: Tokens (P, N, C) of the two sets.
        mask_a, mask_b: Valid tokens (P, N).

    Returns:
        ``(nn_ab, nn_ba, matched_a, matched_b)``: the nearest valid token of ``xb`` for each
        token of ``xa`` (P, N); the partner in ``xa`` of each matched token of ``xb`` (P, N,
        zero where unmatched); and which valid tokens are mutual nearest neighbours (P, N).
    """
    p, n, _ = xa.shape
    an = F.normalize(xa, dim=-1)
    bn = F.normalize(xb, dim=-1)
    neg_inf = float("-inf")
    col_bias = torch.zeros(p, 1, n, dtype=an.dtype, device=an.device)
    col_bias = col_bias.masked_fill(~mask_b.unsqueeze(1), neg_inf)
    nn_ab = torch.empty(p, n, dtype=torch.long, device=an.device)
    row_best = torch.empty(p, n, dtype=an.dtype, device=an.device)
    col_best = torch.full((p, n), neg_inf, dtype=an.dtype, device=an.device)
    step = _chunk(n, p * n, an.device)
    for start in range(0, n, step):
        stop = min(n, start + step)
        sim = torch.baddbmm(col_bias, an[:, start:stop], bn.transpose(1, 2))
        best = sim.max(-1)
        nn_ab[:, start:stop] = best.indices
        row_best[:, start:stop] = best.values
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


def valid_positions(mask: Tensor) -> tuple[Tensor, Tensor]:
    """All valid positions of each row, in increasing order, padded: (index, valid) (P, A).

    ``A`` is the largest valid count of a row (at least 1).
    """
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    width = max(1, int(mask.sum(1).max()))
    index = order[:, :width]
    return index, gather_values(mask, index)


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
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    t = t.clamp(max=mask.shape[1] - 1)
    return gather_values(order, t), count


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


#: Largest self-similarity matrix (sets x N x N) that :class:`TokenGrams` keeps whole, in
#: bytes (times ``CUDA_CHUNK_FACTOR`` on a GPU); beyond it the searches run in chunks.
GRAM_BYTES = 256 << 20

#: Elements of one block of rows of a (sets, N, N) score matrix ranked at a time: small
#: blocks stay in cache and reuse freed memory instead of faulting in fresh pages.
RANK_BLOCK_ELEMENTS = 1 << 19


class Workspace:
    """A reusable flat buffer for the Gram matrices of :class:`TokenGrams`.

    Kept by a loss between calls, so that the large (sets, N, N) matrix reuses memory
    instead of faulting in fresh pages every step (on CPU that costs more than the
    arithmetic). Holds at most :data:`GRAM_BYTES` (times ``CUDA_CHUNK_FACTOR`` on a GPU).
    """

    def __init__(self) -> None:
        self._buffer: Tensor | None = None

    def get(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        numel = 1
        for size in shape:
            numel *= size
        buf = self._buffer
        if buf is None or buf.dtype != dtype or buf.device != device or buf.numel() < numel:
            self._buffer = None  # free the old one first
            buf = self._buffer = torch.empty(numel, dtype=dtype, device=device)
        return buf[:numel].view(shape)


class TokenGrams:
    """Neighbour searches and cosine similarities within token sets, without gradient.

    One raw Gram matrix ``G = x x^T`` per set serves the Euclidean ranking
    (``|x_j|^2 - 2 G_ij``, the anchor's own norm is constant along a row), the cosine ranking
    (``G_ij / |x_j|``) and the cosine similarities ``G_ij / (|x_i| |x_j|)`` of sampled token
    pairs. The matrices are kept whole when they fit :data:`GRAM_BYTES` (time
    ``O(S N^2 C)``, memory ``O(S N^2)``); otherwise every query runs in chunks of anchors
    over the tokens (memory ``O(anchors x N)``).

    Args:
        x: Tokens (S, N, C) of ``S`` sets; masked tokens must be zero. The searches use
            ``x.detach()``; :attr:`units` keeps the gradient path to ``x``.
        workspace: Where to keep the Gram matrices (reused between calls), or ``None``.
        full: Whether whole matrices may be used; ``False`` when the queries touch few
            rows (e.g. a few sampled anchors per set), where rows on demand are cheaper.
    """

    def __init__(self, x: Tensor, workspace: Workspace | None = None, full: bool = True) -> None:
        self._source = x
        self._units: Tensor | None = None
        self.x = x.detach()
        s, n, _ = self.x.shape
        budget = GRAM_BYTES * (CUDA_CHUNK_FACTOR if self.x.is_cuda else 1)
        self.sq = self.x.pow(2).sum(-1)
        self.inv_norm = 1.0 / self.sq.sqrt().clamp(min=1e-12)
        self.gram: Tensor | None = None
        if full and s * n * n * self.x.element_size() <= budget:
            shape = (s, n, n)
            if workspace is None:
                self.gram = torch.bmm(self.x, self.x.transpose(1, 2))
            else:
                out = workspace.get(shape, self.x.dtype, self.x.device)
                self.gram = torch.bmm(self.x, self.x.transpose(1, 2), out=out)

    @property
    def units(self) -> Tensor:
        """The unit tokens ``normalize(x)`` (S, N, C), differentiable with respect to ``x``."""
        if self._units is None:
            self._units = F.normalize(self._source, dim=-1)
        return self._units

    @torch.no_grad()
    def knn(
        self, sets: Tensor | None, anchors: Tensor | None, mask: Tensor, k: int, metric: str
    ) -> tuple[Tensor, Tensor]:
        """The ``k`` nearest valid tokens of each anchor, the anchor excluded (as :func:`knn`).

        Args:
            sets: Set of each row (P,), or ``None`` for all sets in order.
            anchors: Anchor token indices (P, A), or ``None`` for every token.
            mask: Valid tokens (P, N).
            k: Number of neighbours.
            metric: ``"euclidean"`` or ``"cosine"``.

        Returns:
            ``(index, found)``: (P, A, k) nearest first, and which are valid tokens.
        """
        s, n, _ = self.x.shape
        sets_ = torch.arange(s, device=self.x.device) if sets is None else sets
        p = sets_.shape[0]
        if anchors is None:
            anchors_ = torch.arange(n, device=self.x.device).expand(p, n)
        else:
            anchors_ = anchors
        if self.gram is None:
            x = self.x if sets is None else self.x[sets_]
            return knn(x, anchors_, mask, k, metric)
        a = anchors_.shape[1]
        euclid = metric == "euclidean"
        fill = float("inf") if euclid else float("-inf")
        # Euclidean: rank |x_j|^2 - 2 G_ij ascending; cosine: G_ij / |x_j| descending
        if euclid:
            bias = self.sq[sets_].masked_fill(~mask, fill).unsqueeze(1)
        else:
            bias = torch.zeros_like(self.sq[sets_]).masked_fill(~mask, fill).unsqueeze(1)
            scale = self.inv_norm[sets_].unsqueeze(1)
        rows = (sets_ * n).unsqueeze(1) + anchors_
        direct = sets is None and anchors is None
        gram = self.gram.view(s * n, n)
        step = max(1, min(a, RANK_BLOCK_ELEMENTS // max(1, p * n)))
        buffer = self.x.new_empty(p * step * n)
        out, found = [], []
        for start in range(0, a, step):
            stop = min(a, start + step)
            block = buffer[: p * (stop - start) * n].view(p, stop - start, n)
            if direct and euclid:
                torch.add(bias, self.gram[:, start:stop], alpha=-2.0, out=block)
            elif direct:
                torch.addcmul(bias, self.gram[:, start:stop], scale, out=block)
            else:
                torch.index_select(gram, 0, rows[:, start:stop].reshape(-1), out=block.view(-1, n))
                if euclid:
                    block.mul_(-2.0).add_(bias)
                else:
                    block.mul_(scale).add_(bias)
            block.scatter_(2, anchors_[:, start:stop].unsqueeze(-1), fill)
            top = block.topk(k, dim=-1, largest=not euclid, sorted=True)
            out.append(top.indices)
            found.append(top.values.isfinite())
        return torch.cat(out, 1), torch.cat(found, 1)

    @torch.no_grad()
    def cosine(self, sets: Tensor | None, rows: Tensor, cols: Tensor) -> Tensor:
        """Cosine similarities ``cos(x[sets, rows], x[sets, cols])``: (P, A) and (P, A, J) -> (P, A, J)."""
        s, n, _ = self.x.shape
        sets_ = torch.arange(s, device=self.x.device) if sets is None else sets
        if self.gram is None:
            xn = F.normalize(self.x if sets is None else self.x[sets_], dim=-1)
            return sampled_dot(gather_tokens(xn, rows), xn, cols)
        inv = self.inv_norm[sets_]
        base = (sets_ * n).unsqueeze(1) + rows
        flat = (base * n).unsqueeze(-1) + cols
        values = self.gram.view(-1).take(flat)
        return values * gather_values(inv, rows).unsqueeze(-1) * gather_values(inv, cols)


class _CosineAt(torch.autograd.Function):
    """``out[p, a, j] = <yn[sets[p], rows[p, a]], yn[sets[p], cols[p, a, j]]>`` from
    precomputed values.

    The forward returns the given values (computed without gradient, e.g. by
    :class:`TokenGrams`); the backward scatters the gradient to both tokens of every pair
    with two weighted gathers (``embedding_bag``), without materialising (P, A, J, C).
    """

    @staticmethod
    def forward(
        ctx: Any, yn: Tensor, sets: Tensor, rows: Tensor, cols: Tensor, values: Tensor
    ) -> Tensor:
        ctx.save_for_backward(yn, sets, rows, cols)
        return values.detach().to(yn.dtype).clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        yn, sets, rows, cols = ctx.saved_tensors
        s, n, c = yn.shape
        j = cols.shape[-1]
        offset = (sets * n).view(-1, 1)
        flat_rows = (rows + offset).reshape(-1)
        flat_cols = (cols + offset.unsqueeze(-1)).reshape(-1)
        weights = grad.to(yn.dtype).reshape(-1).contiguous()
        table = yn.reshape(s * n, c)
        out = torch.zeros(s * n, c, dtype=yn.dtype, device=yn.device)
        if flat_cols.numel() == 0:
            return out.view(s, n, c), None, None, None, None
        # row side: sum_j g[a, j] yn[cols[a, j]], bags of J
        row_side = F.embedding_bag(
            flat_cols.view(-1, j), table, per_sample_weights=weights.view(-1, j), mode="sum"
        )
        out.index_add_(0, flat_rows, row_side)
        # column side: sum over pairs (a, j) with cols[a, j] = t of g[a, j] yn[rows[a]]
        order = flat_cols.argsort()
        counts = torch.bincount(flat_cols, minlength=s * n)
        offsets = torch.cumsum(counts, 0) - counts
        source = flat_rows.repeat_interleave(j)[order]
        out += F.embedding_bag(
            source, table, offsets, per_sample_weights=weights[order], mode="sum"
        )
        return out.view(s, n, c), None, None, None, None


def cosine_at(yn: Tensor, sets: Tensor, rows: Tensor, cols: Tensor, values: Tensor) -> Tensor:
    """Differentiable ``<yn[sets[p], rows[p, a]], yn[sets[p], cols[p, a, j]]>`` (P, A, J).

    ``yn`` (S, N, C) are unit tokens, ``sets`` (P,), ``rows`` (P, A), ``cols`` (P, A, J);
    the values were computed without gradient (``values``, e.g. by :class:`TokenGrams`).
    """
    out: Tensor = _CosineAt.apply(yn, sets, rows, cols, values)
    return out
