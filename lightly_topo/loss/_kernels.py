"""A fused CPU kernel for the neighbour searches of the TACO losses (numba).

Private module. With PyTorch ops, ranking the rows of a Gram matrix takes several passes
over it (a score transform, the exclusion of the anchor, chunk extrema, two ``topk``
calls); :func:`top_k_rows` does it in one pass per row, on as many threads as PyTorch uses.
It runs when numba is installed (``pip install "lightly-topo[fast]"``) and the tensors are
float32 or float64 on a CPU; otherwise the PyTorch path runs. Both give the same
neighbours, up to the order among exactly equal scores.

Set the environment variable ``LIGHTLY_TOPO_KERNELS=0`` to use the PyTorch path only.
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any

import numpy as np
import torch
from torch import Tensor

numba: Any
try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

#: Whether the kernels may be used (numba importable and not disabled).
ENABLED = numba is not None and os.environ.get("LIGHTLY_TOPO_KERNELS", "1") != "0"

#: Chunks per row in :func:`top_k_rows`: chunk ``t`` holds the elements ``t, t + CHUNKS, ...``
#: (a strided partition, so that the chunk maxima are vertical, vectorised maxima).
CHUNKS = 32

_DTYPES = (torch.float32, torch.float64)


def usable(*tensors: Tensor) -> bool:
    """Whether the kernels run for these tensors: enabled, on CPU, float32 or float64."""
    return ENABLED and all(t.device.type == "cpu" and t.dtype in _DTYPES for t in tensors)


#: Least number of scores per thread worth starting a thread for.
THREAD_MIN_ELEMENTS = 1 << 18


def _run(
    kernel: Any, total: int, per_item: int, before: tuple[Any, ...], after: tuple[Any, ...]
) -> None:
    """Runs ``kernel(*before, start, stop, *after)`` over ``range(total)`` split across threads.

    The kernels release the GIL, so plain Python threads run them in parallel; unlike
    numba's parallel layers (OpenMP), they survive a ``fork`` (DataLoader workers, fork-based
    DDP) and concurrent calls.
    """
    threads = max(1, min(torch.get_num_threads(), total * per_item // THREAD_MIN_ELEMENTS))
    bounds = [total * t // threads for t in range(threads + 1)]
    workers = [
        threading.Thread(target=kernel, args=(*before, lo, hi, *after))
        for lo, hi in itertools.pairwise(bounds[1:])
    ]
    for worker in workers:
        worker.start()
    kernel(*before, bounds[0], bounds[1], *after)
    for worker in workers:
        worker.join()


def _jit(inline: str = "never") -> Any:
    assert numba is not None
    return numba.njit(cache=True, nogil=True, boundscheck=False, inline=inline)


def _array(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


if numba is not None:

    @_jit(inline="always")
    def _insert(v, j, k, idx, val):
        m = k - 1
        while m > 0 and val[m - 1] < v:
            val[m] = val[m - 1]
            idx[m] = idx[m - 1]
            m -= 1
        val[m] = v
        idx[m] = j
        return val[k - 1]

    @_jit()
    def _row_top(row, bias, scale, exclude, k, idx, val):
        n = row.shape[0]
        neg = -np.inf
        default = exclude if exclude >= 0 else 0
        for m in range(k):
            val[m] = neg
            idx[m] = default
        worst = neg
        # a local array of one vector per chunk: the loop below compiles to vector maxima
        maxima = np.full(CHUNKS, neg, row.dtype)
        full = n - n % CHUNKS
        for base in range(0, full, CHUNKS):
            for t in range(CHUNKS):
                v = row[base + t] * scale[base + t] + bias[base + t]
                maxima[t] = v if v > maxima[t] else maxima[t]
        for j in range(full, n):
            v = row[j] * scale[j] + bias[j]
            t = j - full
            maxima[t] = v if v > maxima[t] else maxima[t]
        if exclude >= 0:
            t = exclude % CHUNKS
            best = neg
            for j in range(t, n, CHUNKS):
                v = row[j] * scale[j] + bias[j]
                if j != exclude and v > best:
                    best = v
            maxima[t] = best
        # every one of the k best elements is at least the k-th largest chunk maximum
        threshold = neg
        for t in range(CHUNKS):
            if maxima[t] > threshold:
                threshold = _insert(maxima[t], t, k, idx, val)
        for m in range(k):
            val[m] = neg
            idx[m] = default
        for t in range(CHUNKS):
            if maxima[t] >= threshold and maxima[t] > neg:
                for j in range(t, n, CHUNKS):
                    v = row[j] * scale[j] + bias[j]
                    if v >= threshold and v > worst and j != exclude:
                        worst = _insert(v, j, k, idx, val)

    @_jit()
    def _row_top_short(row, bias, scale, exclude, k, idx, val):
        neg = -np.inf
        for m in range(k):
            val[m] = neg
            idx[m] = exclude if exclude >= 0 else 0
        worst = neg
        for j in range(row.shape[0]):
            v = row[j] * scale[j] + bias[j]
            if v > worst and j != exclude:
                worst = _insert(v, j, k, idx, val)

    @_jit()
    def _top_rows(gram, rows, exclude, group, bias, scale, k, start, stop, idx, val):
        short = gram.shape[1] < 4 * CHUNKS
        for r in range(start, stop):
            g = group[r]
            if short:
                _row_top_short(gram[rows[r]], bias[g], scale[g], exclude[r], k, idx[r], val[r])
            else:
                _row_top(gram[rows[r]], bias[g], scale[g], exclude[r], k, idx[r], val[r])


def top_k_rows(
    gram: Tensor,
    rows: Tensor,
    exclude: Tensor,
    group: Tensor,
    bias: Tensor,
    scale: Tensor,
    k: int,
) -> tuple[Tensor, Tensor]:
    """The ``k`` largest scores ``gram[rows[r], j] * scale[g, j] + bias[g, j]`` of each row.

    Args:
        gram: Matrix (M, N), the rows to rank.
        rows: Row of ``gram`` to rank for each output row (R,).
        exclude: Column left out of each output row (R,), or ``-1``.
        group: Row of ``bias`` and ``scale`` for each output row (R,).
        bias: Additive term (G, N); ``-inf`` leaves a column out.
        scale: Multiplicative term (G, N).
        k: Number of columns, ``k <= N``.

    Returns:
        ``(index, found)`` (R, k): the best columns, best first, and whether each is a
        finite score (False in the tail where fewer than ``k`` exist; the index is then
        ``exclude`` or 0).
    """
    total = rows.shape[0]
    idx = np.empty((total, k), np.int64)
    val = np.empty((total, k), _array(gram).dtype)
    arrays = (
        _array(gram),
        _array(rows.long()),
        _array(exclude.long()),
        _array(group.long()),
        _array(bias.to(gram.dtype)),
        _array(scale.to(gram.dtype)),
        k,
    )
    _run(_top_rows, total, gram.shape[1], arrays, (idx, val))
    return torch.from_numpy(idx), torch.from_numpy(val) > float("-inf")
