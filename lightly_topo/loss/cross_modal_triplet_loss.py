"""Intra-instance cross-modal topology loss of TACO."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch import distributed as torch_dist

from lightly_topo.loss import _grams, _ops
from lightly_topo.loss._tokens import (
    Negatives,
    SeededRandom,
    all_reduce_sum,
    check_options,
    is_distributed,
    keep_gradient_path,
    no_autocast,
    prepare_pair,
)


class CrossModalTripletLoss(nn.Module):
    """Intra-instance cross-modal topology loss of TACO [0].

    For each subject and each direction X -> Y (X, Y the token features of the two
    modalities, ``a -> b`` and ``b -> a``): the ``k`` nearest tokens ``N_k(i)`` of an anchor
    token ``i`` in X (Euclidean distance, ``i`` excluded, no gradient) should stay nearer
    to ``i`` in Y than the non-neighbours (all other valid tokens), with cosine distance
    ``d`` in Y: ``relu(d(Y_i, Y_j) - d(Y_i, Y_n) + margin)`` for a neighbour ``j`` and a
    non-neighbour ``n``. The terms are averaged over the pairs of an anchor, then over
    anchors, then over subjects; the loss is the sum of the two directions.

    - [0] Beyond Instance-Level Self-Supervision in 3D Multi-Modal Medical Imaging
      (TACO), ICML 2026.

    Tokens are spatial positions with the channels last: a map ``(B, C, D, H, W)`` becomes
    ``(B, D*H*W, C)`` in C order. Masked tokens take no part at all (neither anchor,
    neighbour nor non-neighbour). A subject with fewer than ``k + 2`` valid tokens is
    skipped. The distance math runs in float32 (float64 for float64 input), also under
    autocast.

    Negative modes:
        - ``negatives=s`` (int): ``s`` non-neighbours per anchor are drawn uniformly with
          replacement, and the m-th neighbour is paired with the m-th drawn non-neighbour
          (as the authors' recipe; with ``s != k`` the shorter list is cycled, giving
          ``max(k, s)`` pairs per anchor).
        - ``negatives="all"``: deterministic, the mean over every neighbour x
          non-neighbour pair (memory ``O(anchors x N)``).

    Cost: both directions of every subject run as one batch. The searches (no gradient)
    use one raw Gram matrix per subject and modality, shared by the Euclidean neighbour
    search of one direction and the cosine distances of the other (and, inside
    :class:`~lightly_topo.loss.TopoAlignLoss`, by the inter-instance term): time
    ``O(B N^2 C)``, kept whole when the ``2B`` matrices fit 256 MiB (1 GiB on a GPU; the
    buffer is reused between calls), otherwise computed in chunks of anchors with memory
    ``O(anchors x N)``. The gradient flows only through the sampled (anchor, neighbour,
    non-neighbour) similarities. ``max_tokens`` draws at most that many anchors per
    subject (uniformly among valid tokens, reproducibly with ``seed``); neighbours and
    non-neighbours are still searched among all valid tokens, and with
    ``max_tokens < N / 2`` only the anchors' rows are computed (time
    ``O(B max_tokens N C)``, memory ``O(max_tokens x N)``).

    Statistics of the last call are in :attr:`last_stats` (detached 0-dim tensors):
    ``loss``, ``loss_a_to_b``, ``loss_b_to_a``, ``n_anchors`` (valid anchors, both
    directions), ``n_subjects`` (subjects that took part).

    Attributes:
        k: Number of neighbours.
        margin: Hinge margin.
        negatives: ``int`` or ``"all"``.
        max_tokens: Anchors per subject, or ``None`` for all tokens.
        gather_distributed: If True, the mean over subjects is taken over the subjects
            of every process (the intra-instance terms never cross subjects, so no
            feature is gathered): the averaged DDP gradient then equals the gradient of
            the single-process loss on the concatenated batch.
        seed: Seed of the negative and anchor sampling, or ``None`` for the global RNG.

    Examples:
        >>> import torch
        >>> from lightly.loss import NTXentLoss
        >>> from lightly_topo.loss import CrossModalTripletLoss
        >>>
        >>> ntxent, intra = NTXentLoss(), CrossModalTripletLoss()
        >>> # pooled embeddings and dense maps of two modalities of 4 subjects
        >>> z0, z1 = torch.randn(4, 128), torch.randn(4, 128)
        >>> dense_a = torch.randn(4, 192, 3, 3, 3, requires_grad=True)
        >>> dense_b = torch.randn(4, 192, 3, 3, 3, requires_grad=True)
        >>> loss = ntxent(z0, z1) + intra(dense_a, dense_b)
        >>> loss.backward()
    """

    def __init__(
        self,
        k: int = 5,
        margin: float = 0.05,
        negatives: Negatives = 5,
        max_tokens: int | None = None,
        gather_distributed: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_options(k, margin, negatives, max_tokens, gather_distributed)
        self.k = k
        self.margin = margin
        self.negatives = negatives
        self.max_tokens = max_tokens
        self.gather_distributed = gather_distributed
        self.seed = seed
        self._random = SeededRandom(seed)
        self._workspace = _ops.Workspace()
        self.last_stats: dict[str, Tensor] = {}

    def forward(self, feats_a: Tensor, feats_b: Tensor, mask: Tensor | None = None) -> Tensor:
        """Computes the loss.

        Args:
            feats_a: Dense features of modality a, ``(B, C, D, H, W)`` or tokens
                ``(B, N, C)``.
            feats_b: Features of modality b of the same subjects, same shape.
            mask: Valid tokens, bool ``(B, N)`` (or ``(B, D, H, W)``); ``None``: all.

        Returns:
            The loss, a scalar.

        Raises:
            LossInputError: On mismatched shapes, ``N < k + 2``, non-finite features or a
                bad mask.
        """
        a, b, token_mask = prepare_pair(feats_a, feats_b, mask, min_tokens=self.k + 2)
        return self.loss_from_tokens(a, b, token_mask, token_mask)

    def loss_from_tokens(
        self,
        a: Tensor,
        b: Tensor,
        mask_a: Tensor,
        mask_b: Tensor,
        grams: _grams.TokenGrams | None = None,
    ) -> Tensor:
        """The loss on checked tokens ``(B, N, C)``; a token is valid where both masks are.

        ``grams``, if given, are the searches over ``cat([a, b])`` (shared with the
        inter-instance term by :class:`~lightly_topo.loss.TopoAlignLoss`).
        """
        mask = mask_a & mask_b
        batch, n = a.shape[0], a.shape[1]
        with no_autocast(a.device):
            gen = self._random.generator(a.device)
            subject_ok = mask.sum(1) >= self.k + 2
            anchors: Tensor | None = None
            if self.max_tokens is not None and self.max_tokens < n:
                anchors, anchor_valid = _ops.sample_positions(mask, self.max_tokens, gen)
            else:
                anchor_valid = mask
            anchor_valid = anchor_valid & subject_ok.unsqueeze(1)
            n_anchors = anchor_valid.sum(1)
            ok = n_anchors > 0
            # both directions at once: rows 0..B-1 are a -> b, rows B..2B-1 are b -> a
            if grams is None:
                full = _ops.wants_full_grams(self.max_tokens, n)
                grams = _grams.TokenGrams(torch.cat([a, b]), self._workspace, full)
            per_anchor = self._directions(
                grams, mask.repeat(2, 1), None if anchors is None else anchors.repeat(2, 1), gen
            )
            per_anchor = torch.where(anchor_valid.repeat(2, 1), per_anchor, 0.0)
            terms = (per_anchor.sum(1) / n_anchors.repeat(2).clamp(min=1)).view(2, batch)
            n_subjects = ok.sum()
            if is_distributed(self.gather_distributed):
                world = torch_dist.get_world_size()
                norm = all_reduce_sum(n_subjects.to(a.dtype)).clamp(min=1) / world
            else:
                norm = n_subjects.to(a.dtype).clamp(min=1)
            to_b, to_a = (torch.where(ok, t, 0.0).sum() / norm for t in terms)
            # keep a gradient path to both inputs when no subject takes part
            loss = keep_gradient_path(
                to_b + to_a, (a, b), ok.any(), is_distributed(self.gather_distributed)
            )
        self.last_stats = {
            "loss": loss.detach(),
            "loss_a_to_b": to_b.detach(),
            "loss_b_to_a": to_a.detach(),
            "n_anchors": 2 * n_anchors.sum().detach(),
            "n_subjects": n_subjects.detach(),
        }
        return loss

    def _directions(
        self,
        grams: _grams.TokenGrams,
        mask: Tensor,
        anchors: Tensor | None,
        gen: torch.Generator | None,
    ) -> Tensor:
        """Per-anchor mean hinge (2B, A) of both directions X -> Y.

        Row ``r`` of X is set ``r`` of ``grams`` (``cat([a, b])``) and row ``r`` of Y is
        ``cat([b, a])[r]``, i.e. set ``(r + B) mod 2B``.
        """
        k = self.k
        rows, n = grams.num_sets, grams.tokens
        device = grams.x.device
        half = rows // 2
        y_sets = torch.cat([torch.arange(half, rows), torch.arange(half)]).to(device)
        neighbours, _ = grams.knn(None, anchors, mask, k, metric="euclidean")
        if anchors is None:
            anchors = torch.arange(n, device=device).expand(rows, n)
        exclude = torch.cat([anchors.unsqueeze(-1), neighbours], -1)
        if self.negatives == "all":
            d_pos = 1.0 - grams.similarity(y_sets, anchors, neighbours)
            yn = grams.units(y_sets)
            y_anchor = _ops.gather_tokens(yn, anchors)
            d_all = 1.0 - torch.bmm(y_anchor, yn.transpose(1, 2))
            neg_valid = mask.unsqueeze(1).expand_as(d_all).clone()
            neg_valid.scatter_(2, exclude, False)
            count = neg_valid.sum(-1).clamp(min=1)
            pos_valid = torch.ones_like(d_pos, dtype=torch.bool)
            return _ops.hinge_sum(d_pos, d_all, pos_valid, neg_valid, self.margin) / (k * count)
        s = int(self.negatives)
        exclude_valid = torch.ones_like(exclude, dtype=torch.bool)
        negs, _ = _ops.sample_excluding(mask, exclude, exclude_valid, s, gen)
        cols = torch.cat([neighbours, negs], -1)
        d = 1.0 - grams.similarity(y_sets, anchors, cols)
        d_pos, d_neg = d[..., :k], d[..., k:]
        pairs = torch.arange(max(k, s), device=device)
        hinge = F.relu(d_pos[..., pairs % k] - d_neg[..., pairs % s] + self.margin)
        return hinge.mean(-1)
