"""Exact top-k selection along long rows, by chunk extrema.

Private module. ``torch.topk`` on CPU costs about a microsecond per row plus a few
nanoseconds per element; for a few neighbours among thousands of tokens most of that is
spent on elements that cannot win. :func:`select_k` first reduces every chunk of ``width``
consecutive elements to its extremum (a fast vectorised pass), keeps the ``k`` chunks with
the best extrema, and runs ``topk`` on their ``k * width`` elements only.

Exactness: the ``k`` kept chunks hold ``k`` distinct elements at least as good as the
worst kept extremum ``m``, and every element of a dropped chunk is no better than ``m``.
So the ``k`` best kept elements are ``k`` best elements of the row (the same values as
``torch.topk``; only the order among exactly equal values may differ).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Elements per chunk.
WIDTH = 64

#: Rows shorter than this use ``torch.topk`` directly (little to gain).
MIN_LENGTH = 512


def uses_chunks(length: int, k: int) -> bool:
    """Whether :func:`select_k` selects among chunks for rows of ``length`` valid elements."""
    return length >= MIN_LENGTH and length >= 4 * k * WIDTH


def padded_length(length: int, k: int) -> int:
    """Row length to allocate so that :func:`select_k` can use chunks (a multiple of ``WIDTH``).

    Returns ``length`` itself where plain ``topk`` is used.
    """
    return -(-length // WIDTH) * WIDTH if uses_chunks(length, k) else length


def select_k(
    rows: Tensor, k: int, largest: bool, length: int | None = None
) -> tuple[Tensor, Tensor]:
    """The ``k`` best elements of every row of ``rows`` (..., L), best first.

    Args:
        rows: Scores (..., L), contiguous. Elements ``length:`` of each row are padding
            and must hold the worst value (``-inf`` with ``largest``, else ``+inf``).
        k: Number of elements, ``k <= length``.
        largest: Select the largest (else the smallest) elements.
        length: Valid elements per row; ``None``: all ``L``.

    Returns:
        ``(values, indices)`` (..., k) like ``torch.topk(..., sorted=True)``.
    """
    size = rows.shape[-1]
    length = size if length is None else length
    if not uses_chunks(length, k) or size != padded_length(length, k) or not rows.is_contiguous():
        top = rows[..., :length].topk(k, dim=-1, largest=largest, sorted=True)
        return top.values, top.indices
    lead = rows.shape[:-1]
    chunks = rows.reshape(-1, WIDTH)
    n_rows, per_row = chunks.shape[0] // (size // WIDTH), size // WIDTH
    extrema = chunks.amax(-1) if largest else chunks.amin(-1)
    best = extrema.view(n_rows, per_row).topk(k, dim=-1, largest=largest, sorted=False).indices
    base = torch.arange(n_rows, device=rows.device).unsqueeze(1) * per_row
    candidates = chunks.index_select(0, (base + best).reshape(-1)).view(n_rows, k * WIDTH)
    top = candidates.topk(k, dim=-1, largest=largest, sorted=True)
    chunk = torch.gather(best, 1, torch.div(top.indices, WIDTH, rounding_mode="floor"))
    indices = chunk * WIDTH + top.indices.remainder(WIDTH)
    return top.values.view(*lead, k), indices.view(*lead, k)


def max_k1(rows: Tensor) -> tuple[Tensor, Tensor]:
    """``rows.max(-1)`` (values, first index of the maximum) for contiguous rows (..., L).

    Long rows whose length is a multiple of ``WIDTH`` are reduced chunk by chunk: the
    first chunk with the largest maximum holds the first maximal element.
    """
    size = rows.shape[-1]
    if size < MIN_LENGTH or size % WIDTH != 0 or not rows.is_contiguous():
        top = rows.max(-1)
        return top.values, top.indices
    lead = rows.shape[:-1]
    chunks = rows.reshape(-1, size // WIDTH, WIDTH)
    best = chunks.amax(-1).max(-1)
    picked = chunks[torch.arange(chunks.shape[0], device=rows.device), best.indices]
    indices = best.indices * WIDTH + picked.argmax(-1)
    return best.values.view(lead), indices.view(lead)
