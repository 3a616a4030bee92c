"""Neighbour searches within token sets from one Gram matrix per set (private module)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightly_topo.loss import _kernels, _ops, _select

#: Largest self-similarity matrix (sets x N x N) that :class:`TokenGrams` keeps whole, in
#: bytes (times ``CUDA_CHUNK_FACTOR`` on a GPU); beyond it the searches run in chunks.
GRAM_BYTES = 256 << 20

#: Elements of one block of rows of a (sets, N, N) score matrix ranked at a time: small
#: blocks stay in cache.
RANK_BLOCK_ELEMENTS = 1 << 19

#: On CPU, Gram matrices of at least this many tokens are computed as upper block rows
#: (the lower blocks are copied), saving about a third of the products.
SYMMETRIC_MIN_TOKENS = 1024

#: Block rows of a symmetric Gram matrix.
SYMMETRIC_BLOCKS = 4


def symmetric_gram(x: Tensor, out: Tensor) -> Tensor:
    """``out = x x^T`` for ``x`` (S, N, C), writing ``out`` (S, N, N).

    On CPU for ``N >= SYMMETRIC_MIN_TOKENS`` only the blocks on and above the diagonal are
    multiplied; the others are transposed copies (the same values: ``G_ij = G_ji``).
    """
    n = x.shape[1]
    if x.is_cuda or n < SYMMETRIC_MIN_TOKENS:
        return torch.bmm(x, x.transpose(1, 2), out=out)
    size = -(-n // SYMMETRIC_BLOCKS)
    starts = list(range(0, n, size))
    x_t = x.transpose(1, 2)
    for i in starts:
        torch.bmm(x[:, i : i + size], x_t[:, :, i:], out=out[:, i : i + size, i:])
    for i in starts:
        for j in starts:
            if j >= i:
                break
            out[:, i : i + size, j : j + size].copy_(
                out[:, j : j + size, i : i + size].transpose(1, 2)
            )
    return out


class TokenGrams:
    """Neighbour searches and cosine similarities within token sets, without gradient.

    One raw Gram matrix ``G = x x^T`` per set serves the Euclidean ranking
    (``|x_j|^2 - 2 G_ij``, the anchor's own norm is constant along a row), the cosine ranking
    (``G_ij / |x_j|``) and the cosine similarities ``G_ij / (|x_i| |x_j|)`` of sampled token
    pairs. The matrices are kept whole when they fit :data:`GRAM_BYTES` (time
    ``O(S N^2 C)``, memory ``O(S N^2)``); otherwise every query runs in chunks of anchors
    over the tokens (memory ``O(anchors x N)``). Rankings of whole matrices run in the fused
    CPU kernel of :mod:`~lightly_topo.loss._kernels` where it is usable, otherwise in blocks
    of rows that stay in cache, with the exact chunked selection of
    :func:`~lightly_topo.loss._select.select_k`.

    The queries name *logical* sets; ``alias`` maps them to the stored sets, so that a set
    used by several logical sets (a modality in several modality pairs) is multiplied once.

    Args:
        x: Tokens (S, N, C) of ``S`` stored sets. The searches use ``x.detach()``; the
            differentiable similarities keep the gradient path to ``x``.
        workspace: Where to keep the Gram matrices and blocks between calls (CPU only), or
            ``None``.
        full: Whether whole matrices may be used; ``False`` when the queries touch few
            rows (e.g. a few sampled anchors per set), where rows on demand are cheaper.
        alias: Stored set of each logical set (L,), or ``None``: the logical sets are the
            stored sets.
        stored_mask: Valid tokens of the stored sets (S, N), with ``alias``, where every
            logical set's mask is its stored set's mask or empty: the searches over every
            token of every logical set then run once per stored set.
    """

    def __init__(
        self,
        x: Tensor,
        workspace: _ops.Workspace | None = None,
        full: bool = True,
        alias: Tensor | None = None,
        stored_mask: Tensor | None = None,
    ) -> None:
        self._source = x
        self._units: Tensor | None = None
        self._unit_values: Tensor | None = None
        self._workspace = workspace
        self.alias = alias
        self.stored_mask = stored_mask
        self.x = x.detach().contiguous()
        s, n, _ = self.x.shape
        budget = GRAM_BYTES * (_ops.CUDA_CHUNK_FACTOR if self.x.is_cuda else 1)
        self.gram: Tensor | None = None
        if full and s * n * n * self.x.element_size() <= budget:
            out = self._get("gram", (s, n, n))
            self.gram = symmetric_gram(self.x, out)
            # squared norms G_ii: no (S, N, C) temporary
            self.sq = self.gram.diagonal(dim1=1, dim2=2).clone()
        else:
            self.sq = _ops.squared_norms(self.x)
        self.inv_norm = 1.0 / self.sq.sqrt().clamp(min=1e-12)

    @property
    def num_sets(self) -> int:
        """Number of logical sets."""
        return self.x.shape[0] if self.alias is None else self.alias.shape[0]

    @property
    def tokens(self) -> int:
        """Tokens per set ``N``."""
        return self.x.shape[1]

    def stored(self, sets: Tensor | None) -> Tensor:
        """The stored set of each logical set in ``sets`` (``None``: every logical set)."""
        if sets is None:
            if self.alias is not None:
                return self.alias
            return torch.arange(self.x.shape[0], device=self.x.device)
        return sets if self.alias is None else self.alias[sets]

    def _get(self, name: str, shape: tuple[int, ...]) -> Tensor:
        return _ops._buffer(self._workspace, name, shape, self.x.dtype, self.x.device)

    def units(self, sets: Tensor) -> Tensor:
        """The unit tokens ``normalize(x)`` of logical ``sets`` (P, N, C), differentiable."""
        if self._units is None:
            self._units = F.normalize(self._source, dim=-1)
        return self._units[self.stored(sets)]

    @property
    def unit_values(self) -> Tensor:
        """The unit tokens ``x / |x|`` of the stored sets (S, N, C), without gradient."""
        if self._unit_values is None:
            self._unit_values = self.x * self.inv_norm.unsqueeze(-1)
        return self._unit_values

    def similarity(self, sets: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        """Differentiable :meth:`cosine` (the gradient goes to the tokens ``x``)."""
        values = self.cosine(sets, rows, cols)
        stored = self.stored(sets)
        return _ops.cosine_at(
            self._source, self.unit_values, self.inv_norm, stored, rows, cols, values
        )

    @torch.no_grad()
    def knn(
        self, sets: Tensor | None, anchors: Tensor | None, mask: Tensor, k: int, metric: str
    ) -> tuple[Tensor, Tensor]:
        """The ``k`` nearest valid tokens of each anchor, the anchor excluded (as :func:`_ops.knn`).

        Args:
            sets: Set of each row (P,), or ``None`` for all sets in order.
            anchors: Anchor token indices (P, A), or ``None`` for every token.
            mask: Valid tokens (P, N).
            k: Number of neighbours.
            metric: ``"euclidean"`` or ``"cosine"``.

        Returns:
            ``(index, found)``: (P, A, k) nearest first, and which are valid tokens.
        """
        if (
            sets is None
            and anchors is None
            and self.alias is not None
            and self.stored_mask is not None
        ):
            # every logical mask is its stored set's mask or empty: search each stored set
            # once; empty logical sets find nothing
            index, found = self._knn(None, None, self.stored_mask, k, metric)
            return index[self.alias], found[self.alias] & mask.any(1).view(-1, 1, 1)
        return self._knn(self.stored(sets), anchors, mask, k, metric)

    def _knn(
        self, sets: Tensor | None, anchors: Tensor | None, mask: Tensor, k: int, metric: str
    ) -> tuple[Tensor, Tensor]:
        """:meth:`knn` on stored ``sets`` (``None``: every stored set in order)."""
        s, n, _ = self.x.shape
        sets_ = torch.arange(s, device=self.x.device) if sets is None else sets
        p = sets_.shape[0]
        if anchors is None:
            anchors_ = torch.arange(n, device=self.x.device).expand(p, n)
        else:
            anchors_ = anchors
        if self.gram is None:
            every = sets is None or (
                not sets_.is_cuda and p == s and torch.equal(sets_, torch.arange(s))
            )
            sq = self.sq if every else self.sq[sets_]
            if metric == "cosine":
                x = self.unit_values if every else self.unit_values[sets_]
                return _ops.knn(x, anchors_, mask, k, metric, self._workspace, normalized=True)
            x = self.x if every else self.x[sets_]
            return _ops.knn(x, anchors_, mask, k, metric, self._workspace, sq=sq)
        a = anchors_.shape[1]
        euclid = metric == "euclidean"
        if n >= _kernels.MIN_LENGTH and _kernels.usable(self.gram):
            return self._knn_kernel(sets_, anchors_, mask, k, euclid)
        fill = float("inf") if euclid else float("-inf")
        # Euclidean: rank |x_j|^2 - 2 G_ij ascending; cosine: G_ij / |x_j| descending
        if euclid:
            bias = self.sq[sets_].masked_fill(~mask, fill).unsqueeze(1)
        else:
            bias = torch.zeros_like(self.sq[sets_]).masked_fill(~mask, fill).unsqueeze(1)
            scale = self.inv_norm[sets_].unsqueeze(1)
        direct = sets is None and anchors is None
        gram = self.gram.view(s * n, n)
        rows = (sets_ * n).unsqueeze(1) + anchors_
        width = _select.padded_length(n, k)
        step = max(1, min(a, RANK_BLOCK_ELEMENTS // max(1, p * width)))
        blocks = self._get("rank_block", (p, step, width))
        blocks[..., n:] = fill
        picked = None if direct else self._get("rank_rows", (p * step, n))
        out, found = [], []
        for start in range(0, a, step):
            stop = min(a, start + step)
            block = blocks[:, : stop - start]
            scores = block[..., :n]
            if picked is None:
                source = self.gram[:, start:stop]
            else:
                source = picked[: p * (stop - start)].view(p, stop - start, n)
                torch.index_select(gram, 0, rows[:, start:stop].reshape(-1), out=source.view(-1, n))
            if euclid:
                torch.add(bias, source, alpha=-2.0, out=scores)
            else:
                torch.addcmul(bias, source, scale, out=scores)
            block.scatter_(2, anchors_[:, start:stop].unsqueeze(-1), fill)
            values, index = _select.select_k(block.contiguous(), k, largest=not euclid, length=n)
            out.append(index)
            found.append(values < fill if euclid else values > fill)
        if len(out) == 1:
            return out[0], found[0]
        return torch.cat(out, 1), torch.cat(found, 1)

    def _knn_kernel(
        self, sets: Tensor, anchors: Tensor, mask: Tensor, k: int, euclid: bool
    ) -> tuple[Tensor, Tensor]:
        """:meth:`_knn` with the fused CPU kernel, ranking ``G_ij - |x_j|^2 / 2`` or ``G_ij / |x_j|``."""
        assert self.gram is not None
        s, n, _ = self.x.shape
        p, a = anchors.shape
        if euclid:
            bias = self.sq[sets] * -0.5
            scale = torch.ones_like(bias)
        else:
            bias = torch.zeros_like(self.sq[sets])
            scale = self.inv_norm[sets]
        bias = bias.masked_fill(~mask, float("-inf"))
        rows = ((sets * n).unsqueeze(1) + anchors).reshape(-1)
        group = torch.arange(p).repeat_interleave(a)
        index, found = _kernels.top_k_rows(
            self.gram.view(s * n, n), rows, anchors.reshape(-1), group, bias, scale, k
        )
        return index.view(p, a, k), found.view(p, a, k)

    @torch.no_grad()
    def cosine(self, sets: Tensor | None, rows: Tensor, cols: Tensor) -> Tensor:
        """Cosine similarities ``cos(x[sets, rows], x[sets, cols])``: (P, A) and (P, A, J) -> (P, A, J)."""
        s, n, _ = self.x.shape
        sets_ = self.stored(sets)
        base = (sets_ * n).unsqueeze(1) + rows
        if self.gram is None:
            # one flat table of unit tokens: no per-call copy of the sets
            p, a, j = cols.shape
            table = self.unit_values.view(1, s * n, -1)
            anchor_units = table[0].index_select(0, base.reshape(-1)).view(1, p * a, -1)
            flat_cols = ((sets_ * n).view(p, 1, 1) + cols).view(1, p * a, j)
            return _ops.sampled_dot(anchor_units, table, flat_cols).view(p, a, j)
        inv = self.inv_norm[sets_]
        flat = (base * n).unsqueeze(-1) + cols
        values = self.gram.view(-1).take(flat)
        return values * _ops.gather_values(inv, rows).unsqueeze(-1) * _ops.gather_values(inv, cols)
