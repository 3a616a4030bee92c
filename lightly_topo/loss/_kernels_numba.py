"""The numba kernels of :mod:`lightly_topo.loss._kernels` (private; imports numba)."""

from typing import Any, Literal

import numba
import numpy as np

#: Chunks per row in :func:`top_rows`: chunk ``t`` holds the elements ``t, t + CHUNKS, ...``
#: (a strided partition, so that the chunk maxima are vertical, vectorised maxima).
CHUNKS = 32


def _jit(inline: Literal["never", "always"] = "never") -> Any:
    return numba.njit(cache=True, nogil=True, boundscheck=False, inline=inline)


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


@_jit(inline="always")
def _score(row, bias, scale, j):
    return row[j] * scale[j] + bias[j]


@_jit(inline="always")
def _reset(exclude, k, idx, val):
    default = exclude if exclude >= 0 else 0
    for m in range(k):
        val[m] = -np.inf
        idx[m] = default


@_jit()
def _row_top(row, bias, scale, exclude, k, idx, val):
    n = row.shape[0]
    neg = -np.inf
    _reset(exclude, k, idx, val)
    worst = neg
    # a local array of one vector per chunk: the loop below compiles to vector maxima
    maxima = np.full(CHUNKS, neg, row.dtype)
    full = n - n % CHUNKS
    for base in range(0, full, CHUNKS):
        for t in range(CHUNKS):
            v = _score(row, bias, scale, base + t)
            maxima[t] = v if v > maxima[t] else maxima[t]
    for j in range(full, n):
        v = _score(row, bias, scale, j)
        t = j - full
        maxima[t] = v if v > maxima[t] else maxima[t]
    if exclude >= 0:
        t = exclude % CHUNKS
        best = neg
        for j in range(t, n, CHUNKS):
            v = _score(row, bias, scale, j)
            if j != exclude and v > best:
                best = v
        maxima[t] = best
    # every one of the k best elements is at least the k-th largest chunk maximum
    threshold = neg
    for t in range(CHUNKS):
        if maxima[t] > threshold:
            threshold = _insert(maxima[t], t, k, idx, val)
    _reset(exclude, k, idx, val)
    for t in range(CHUNKS):
        if maxima[t] >= threshold and maxima[t] > neg:
            for j in range(t, n, CHUNKS):
                v = _score(row, bias, scale, j)
                if v >= threshold and v > worst and j != exclude:
                    worst = _insert(v, j, k, idx, val)


@_jit()
def _row_top_short(row, bias, scale, exclude, k, idx, val):
    _reset(exclude, k, idx, val)
    worst = -np.inf
    for j in range(row.shape[0]):
        v = _score(row, bias, scale, j)
        if v > worst and j != exclude:
            worst = _insert(v, j, k, idx, val)


@_jit()
def top_rows(gram, rows, exclude, group, bias, scale, k, start, stop, idx, val):
    short = gram.shape[1] < 4 * CHUNKS
    for r in range(start, stop):
        g = group[r]
        if short:
            _row_top_short(gram[rows[r]], bias[g], scale[g], exclude[r], k, idx[r], val[r])
        else:
            _row_top(gram[rows[r]], bias[g], scale[g], exclude[r], k, idx[r], val[r])
