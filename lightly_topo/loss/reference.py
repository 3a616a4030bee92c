"""Plain reference implementations of the two TACO terms, written as ``docs/method.md`` states them.

Slow (Python loops over tokens), exact, and for reading and testing only: the losses of
:mod:`lightly_topo.loss` are tested against these functions, values and gradients, for
``negatives="all"`` and for sampled negatives with a draw shared by both. Symbols follow the
docs: for one subject (or pair), ``x``, ``y`` are the tokens ``(N, C)`` of the two sides, ``V``
the valid tokens, ``N_k(i)`` the ``k`` nearest neighbours of anchor ``i``, ``M(i)`` its
non-neighbours, ``pi`` and ``rho`` the nearest-neighbour maps between two subjects, ``M_X`` the
matched tokens, ``K(i)`` the matched neighbours and ``U(i)`` the negatives. Neighbour searches
run without gradient; the gradient flows through the cosine distances ``d_Y``, as in the
fast path.

A sampled draw is passed as a function: ``draw(direction, sample, anchor)`` returns the
``s`` non-neighbours of anchor ``i`` (intra-instance), and ``draw(direction, pair, anchor,
rank)`` the ``s`` negatives of the neighbour of rank ``rank`` in ``N_k(i)`` (inter-instance).
The functions check that every drawn token lies in the set it must be drawn from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

#: ``draw(direction, sample, anchor) -> s tokens of M(i)`` for the intra-instance term.
IntraDraw = Callable[[int, int, int], Sequence[int]]
#: ``draw(direction, pair, anchor, rank) -> s tokens of U(i)`` for the inter-instance term.
InterDraw = Callable[[int, int, int, int], Sequence[int]]
#: ``subsample(direction, pair) -> (C, Q)``: anchor candidates and negative pool (``max_tokens``).
Subsample = Callable[[int, int], tuple[Sequence[int], Sequence[int]]]


def cosine_distance(y: Tensor, t: int, u: int) -> Tensor:
    """``d_Y(t, u) = 1 - <y_t / |y_t|, y_u / |y_u|>``."""
    return 1.0 - torch.dot(y[t], y[u]) / (y[t].norm() * y[u].norm())


def hinge(d_pos: Tensor, d_neg: Tensor, margin: float) -> Tensor:
    """``[d_pos - d_neg + m]_+``."""
    return torch.relu(d_pos - d_neg + margin)


def nearest(x: Tensor, i: int, candidates: Sequence[int], k: int, metric: str) -> list[int]:
    """The ``k`` tokens of ``candidates`` (``i`` excluded) nearest to ``x_i``, nearest first."""
    with torch.no_grad():
        others = [j for j in candidates if j != i]
        if metric == "euclidean":
            dist = [float((x[i] - x[j]).norm()) for j in others]
        else:
            dist = [float(cosine_distance(x, i, j)) for j in others]
    return [j for _, j in sorted(zip(dist, others, strict=True))[:k]]


def intra_direction(
    x: Tensor,
    y: Tensor,
    valid: Sequence[int],
    k: int,
    margin: float,
    draw: Callable[[int], Sequence[int]] | None,
) -> Tensor:
    """``1/|I| sum_i l_{X->Y}(i)`` over the anchors ``I = V`` of one subject and direction."""
    terms = []
    for i in valid:
        n_k = nearest(x, i, valid, k, "euclidean")  # N_k(i), Euclidean in X
        m_i = [n for n in valid if n != i and n not in n_k]  # M(i)
        if draw is None:
            pairs = [(j, n) for j in n_k for n in m_i]
        else:
            drawn = list(draw(i))
            if not set(drawn) <= set(m_i):
                raise ValueError(f"anchor {i}: drawn {drawn} not all in M(i) = {m_i}")
            s = len(drawn)
            pairs = [(n_k[r % k], drawn[r % s]) for r in range(max(k, s))]
        total = sum(
            (hinge(cosine_distance(y, i, j), cosine_distance(y, i, n), margin) for j, n in pairs),
            start=torch.zeros((), dtype=y.dtype),
        )
        terms.append(total / len(pairs))
    return torch.stack(terms).mean()


def intra_loss(
    a: Tensor,
    b: Tensor,
    mask: Tensor | None = None,
    k: int = 5,
    margin: float = 0.05,
    draw: IntraDraw | None = None,
) -> Tensor:
    """``L_intra``: the mean over the subjects ``S`` with at least ``k + 2`` valid tokens of
    ``T_{A->B} + T_{B->A}``.

    Args:
        a, b: Tokens ``(B, N, C)`` of the two modalities.
        mask: Valid tokens ``(B, N)``; ``None``: all.
        k: Neighbours.
        margin: ``m``.
        draw: ``None`` for ``negatives="all"``; else the shared draw (direction 0 is
            ``A -> B``, 1 is ``B -> A``).
    """
    mask = torch.ones(a.shape[:2], dtype=torch.bool) if mask is None else mask
    per_subject = []
    for s in range(a.shape[0]):
        valid = torch.nonzero(mask[s]).flatten().tolist()
        if len(valid) < k + 2:
            continue
        term = a.new_zeros(())
        for direction, (x, y) in enumerate(((a[s], b[s]), (b[s], a[s]))):
            pick = None if draw is None else (lambda i, d=direction, s=s: draw(d, s, i))
            term = term + intra_direction(x, y, valid, k, margin, pick)
        per_subject.append(term)
    if not per_subject:
        return (a.sum() + b.sum()) * 0.0
    return torch.stack(per_subject).mean()


def inter_direction(
    x: Tensor,
    y: Tensor,
    valid_x: Sequence[int],
    valid_y: Sequence[int],
    k: int,
    margin: float,
    draw: Callable[[int, int], Sequence[int]] | None,
    subsample: tuple[Sequence[int], Sequence[int]] | None = None,
) -> Tensor | None:
    """``1/|I| sum_i l_{X->Y}(i)`` over the valid matched anchors of one pair and direction,
    or ``None`` when no anchor is valid.

    ``subsample = (C, Q)`` (``max_tokens < N``): the anchors are the matched tokens of the
    candidates ``C`` only, and the negatives come from the pool ``Q`` of ``Y`` instead of
    all of ``V_Y``; ``pi``, ``rho``, ``M_X``, ``M_Y`` and ``K(i)`` stay the exact ones.
    """
    with torch.no_grad():
        pi = {i: min(valid_y, key=lambda u: float(_cross_distance(x, y, i, u))) for i in valid_x}
        rho = {u: min(valid_x, key=lambda i: float(_cross_distance(x, y, i, u))) for u in valid_y}
    m_x = [i for i in valid_x if rho[pi[i]] == i]  # matched tokens of X
    m_y = {pi[i] for i in m_x}
    anchors, pool = m_x, list(valid_y)
    if subsample is not None:
        if not set(subsample[0]) <= set(valid_x) or not set(subsample[1]) <= set(valid_y):
            raise ValueError(f"subsample {subsample} not within V_X = {valid_x}, V_Y = {valid_y}")
        anchors = [i for i in subsample[0] if i in m_x]
        pool = list(subsample[1])
    terms = []
    for i in anchors:
        u = pi[i]
        ranked = nearest(x, i, valid_x, k, "cosine")  # N^cos_k(i)
        k_i = [(rank, j) for rank, j in enumerate(ranked) if j in m_x]  # K(i), with ranks
        unmatched = [n for n in pool if n not in m_y]
        positives = {pi[j] for _, j in k_i}
        u_i = unmatched or [n for n in pool if n != u and n not in positives]  # U(i)
        if not k_i or not u_i:
            continue
        hinges = []
        for rank, j in k_i:
            if draw is None:
                negatives = u_i
            else:
                negatives = list(draw(i, rank))
                if not set(negatives) <= set(u_i):
                    raise ValueError(f"anchor {i}: drawn {negatives} not all in U(i) = {u_i}")
            d_pos = cosine_distance(y, u, pi[j])
            hinges += [hinge(d_pos, cosine_distance(y, u, n), margin) for n in negatives]
        terms.append(torch.stack(hinges).mean())
    if not terms:
        return None
    return torch.stack(terms).mean()


def _cross_distance(x: Tensor, y: Tensor, i: int, u: int) -> Tensor:
    return 1.0 - torch.dot(x[i], y[u]) / (x[i].norm() * y[u].norm())


def inter_loss(
    a: Tensor,
    b: Tensor,
    subject_ids: Sequence[object] | None = None,
    mask: Tensor | None = None,
    k: int = 5,
    margin: float = 0.4,
    draw: InterDraw | None = None,
    subsample: Subsample | None = None,
) -> Tensor:
    """``L_inter`` over every ordered pair ``(p, q)`` of different subjects (no ``max_pairs``
    subset): the mean over the pairs with a valid anchor of the ``A_p -> B_q`` term, plus the
    same for ``B_p -> A_q``.

    Args:
        a, b: Tokens ``(B, N, C)`` of the two modalities.
        subject_ids: One id per sample; ``None``: all different.
        mask: Valid tokens ``(B, N)``; ``None``: all.
        k: Neighbours.
        margin: ``m``.
        draw: ``None`` for ``negatives="all"``; else the shared draw; pairs are numbered in
            row-major order of ``(p, q)``, direction 0 is ``A_p -> B_q``.
        subsample: ``None`` for the exact search (``max_tokens >= N``); else
            ``subsample(direction, pair) -> (C, Q)``, the anchor candidates of ``X`` and the
            negative pool of ``Y`` that ``max_tokens`` drew for that pair direction.
    """
    batch = a.shape[0]
    ids = list(range(batch)) if subject_ids is None else list(subject_ids)
    mask = torch.ones(a.shape[:2], dtype=torch.bool) if mask is None else mask
    valid = [torch.nonzero(mask[s]).flatten().tolist() for s in range(batch)]
    pairs = [(p, q) for p in range(batch) for q in range(batch) if ids[p] != ids[q]]
    loss = (a.sum() + b.sum()) * 0.0
    for direction in (0, 1):
        terms = []
        for number, (p, q) in enumerate(pairs):
            x, y = (a[p], b[q]) if direction == 0 else (b[p], a[q])
            pick = None if draw is None else (lambda i, r, d=direction, n=number: draw(d, n, i, r))
            sub = None if subsample is None else subsample(direction, number)
            term = inter_direction(x, y, valid[p], valid[q], k, margin, pick, sub)
            if term is not None:
                terms.append(term)
        if terms:
            loss = loss + torch.stack(terms).mean()
    return loss
