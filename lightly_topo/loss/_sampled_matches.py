"""Mutual nearest neighbours decided for a few sampled tokens (private module).

Computes the inter-instance search of ``docs/method.md`` ("Cost, and when to set
``max_tokens``") without the ``N x N`` cross-similarity matrix: a token ``t`` of ``X`` is
matched exactly when ``rho(pi(t)) = t``, so two rows of length ``N`` decide it, one for
``pi(t)`` (``t`` against ``Y``) and one for ``rho(pi(t))`` (``pi(t)`` against ``X``).
Ties go to the first token, in both directions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightly_topo.loss import _ops


def candidates(max_tokens: int, k: int) -> int:
    """Anchor candidates (and pool tokens) per pair direction within ``max_tokens`` rows.

    Each candidate costs ``2k + 5`` rows of length ``N``: its neighbour search in ``X``,
    the two rows that decide whether it and each of its ``k`` neighbours are matched, and
    the two rows of one token of the negative pool.
    """
    return max(1, max_tokens // (2 * k + 5))


@torch.no_grad()
def nearest(
    units: Tensor, query_sets: Tensor, query: Tensor, target_sets: Tensor, target_mask: Tensor
) -> Tensor:
    """The nearest valid token (cosine, first on ties) of a target set for each query token.

    Args:
        units: Unit tokens (S, N, C) of every stored set.
        query_sets: Stored set of the queries of each row (P,).
        query: Query token indices (P, R).
        target_sets: Stored set searched for each row (P,).
        target_mask: Valid tokens of each row's target set (P, N).

    Returns:
        Indices (P, R) into the target sets (0 for a row without a valid target).
    """
    p, r = query.shape
    n = units.shape[1]
    out = torch.empty(p, r, dtype=torch.long, device=units.device)
    step = max(1, min(r, _ops.CHUNK_ELEMENTS // max(1, n)))
    full = target_mask.all(1).tolist()
    for row, (qs, ts) in enumerate(zip(query_sets.tolist(), target_sets.tolist(), strict=True)):
        target = units[ts]
        invalid = ~target_mask[row]
        for start in range(0, r, step):
            vecs = units[qs].index_select(0, query[row, start : start + step])
            sim = vecs @ target.T
            if not full[row]:
                sim.masked_fill_(invalid, float("-inf"))
            out[row, start : start + step] = sim.max(1).indices
    return out


@torch.no_grad()
def matches(
    units: Tensor,
    x_sets: Tensor,
    y_sets: Tensor,
    mask_x: Tensor,
    mask_y: Tensor,
    tokens: Tensor,
    valid: Tensor,
) -> tuple[Tensor, Tensor]:
    """``pi(t)`` and whether ``t`` is matched, for sampled tokens ``t`` of ``X``.

    Args:
        units: Unit tokens (S, N, C) of every stored set.
        x_sets, y_sets: Stored sets of ``X`` and ``Y`` of each row (P,).
        mask_x, mask_y: Valid tokens (P, N) of ``X`` and ``Y``.
        tokens: Tokens of ``X`` (P, R).
        valid: Which entries of ``tokens`` are real (P, R).

    Returns:
        ``(partner, matched)``, both (P, R): the nearest valid token of ``Y``, and whether
        the token is a valid token of ``X`` whose partner's nearest valid token of ``X`` is
        the token itself.
    """
    partner = nearest(units, x_sets, tokens, y_sets, mask_y)
    back = nearest(units, y_sets, partner, x_sets, mask_x)
    matched = valid & _ops.gather_values(mask_y, partner) & (back == tokens)
    return partner, matched


def draw_from(tokens: Tensor, valid: Tensor, num: int, generator: torch.Generator | None) -> Tensor:
    """``num`` tokens per row drawn uniformly with replacement from the valid entries.

    Args:
        tokens: Token indices (P, Q).
        valid: Which entries each row may draw (P, A, Q).
        num: Draws per row.

    Returns:
        Tokens (P, A, num); rows without a valid entry hold arbitrary tokens.
    """
    count = valid.sum(-1, keepdim=True)
    draw = torch.rand(
        (*valid.shape[:2], num), generator=generator, device=valid.device, dtype=torch.float64
    )
    rank = torch.minimum((draw * count.clamp(min=1)).long(), (count - 1).clamp(min=0))
    slot = torch.searchsorted(valid.long().cumsum(-1), rank + 1).clamp(max=tokens.shape[1] - 1)
    p, a = valid.shape[:2]
    return _ops.gather_values(tokens, slot.view(p, -1)).view(p, a, num)
