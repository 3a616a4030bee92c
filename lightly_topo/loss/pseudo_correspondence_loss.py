"""Inter-instance pseudo-correspondence loss of TACO."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.utils import dist
from torch import Tensor, nn

from lightly_topo.loss import _grams, _ops, _sampled_matches
from lightly_topo.loss._tokens import (
    LossInputError,
    Negatives,
    SeededRandom,
    SubjectIds,
    all_reduce_sum,
    check_options,
    gather_no_grad,
    is_distributed,
    keep_gradient_path,
    no_autocast,
    prepare_pair,
    subject_groups,
)


class PseudoCorrespondenceLoss(nn.Module):
    """Inter-instance pseudo-correspondence loss of TACO [0].

    For ordered pairs ``(p, q)`` of samples of different subjects (never two samples with
    the same ``subject_ids`` value; at most ``max_pairs`` per batch, a random subset),
    with ``A`` the modality-a tokens of ``p`` and ``B`` the modality-b tokens of ``q``:

    - pseudo-correspondences are the mutual nearest neighbours of ``A`` and ``B`` under
      cosine distance (no gradient);
    - for each matched anchor ``i`` of ``A`` with partner ``u`` in ``B``, the ``k`` nearest
      tokens of ``i`` within ``A`` (cosine, ``i`` excluded) are kept where they are
      matched, and their partners in ``B`` are the positives;
    - the negatives are the unmatched tokens of ``B`` (if every token is matched: the
      tokens of ``B`` other than ``u`` and the positives);
    - the hinge is ``relu(dB(u, pos) - dB(u, neg) + margin)``, ``dB`` the cosine distance
      among the tokens of ``B``.

    Anchors without a matched neighbour are skipped. A pair's term is the mean over its
    valid anchors (each anchor: the mean over its positive x negative pairs); the loss is
    the mean over pairs with at least one valid anchor (zero, with a gradient path, when
    there is none, e.g. a batch of one subject), computed in both directions and summed:
    pairs ``(a-tokens of p, b-tokens of q)`` plus pairs ``(b-tokens of p, a-tokens of q)``.
    Only the matched subset is aligned and matched tokens are never pulled together
    directly, which keeps the topology from collapsing across modalities.

    - [0] Beyond Instance-Level Self-Supervision in 3D Multi-Modal Medical Imaging
      (TACO), ICML 2026.

    Negative modes: ``negatives=s`` (int) draws ``s`` negatives per positive, uniformly
    with replacement; ``negatives="all"`` is the deterministic mean over every positive x
    negative pair (memory ``O(anchors x N)`` per pair).

    Tokens, masks, dtypes: as :class:`~lightly_topo.loss.CrossModalTripletLoss`. Masked
    tokens take no part (not in the mutual-NN search, nor as anchor, neighbour or
    negative). Both directions of every pair run as one batch; the mutual-NN search of a
    pair ``(p, q)`` also serves the reverse direction of ``(q, p)``. The neighbour search
    within ``A`` and the similarities within ``B`` use one Gram matrix per sample and
    modality (see :class:`~lightly_topo.loss.CrossModalTripletLoss`, shared with it inside
    :class:`~lightly_topo.loss.TopoAlignLoss`); the gradient flows only through the
    sampled similarities.

    ``max_tokens=m < N`` bounds the search to at most ``m`` rows of length ``N`` per pair
    direction (time and memory ``O(m N C)``, forward and backward; docs/method.md, "Cost,
    and when to set max_tokens"): ``c = max(1, m // (2k + 5))`` anchor candidates are drawn
    uniformly without replacement from the valid tokens of ``A``, and a pool of ``c``
    tokens from those of ``B``. Whether a token is matched needs only two rows,
    ``pi(t)`` and ``rho(pi(t))``, so the matched status of the candidates, of their ``k``
    cosine neighbours (searched among all valid tokens of ``A``) and of the pool is
    **exact**, as are the partners and positives; the anchors are the matched candidates
    and the negatives are drawn from the unmatched pool tokens (if the whole pool is
    matched: the pool without the partner and the positives). The term is then a
    subsample estimate of the exact one: the same anchors' terms, with negatives from a
    uniform subset of ``B``. ``max_tokens >= N`` is the exact loss.

    Distributed: with ``gather_distributed=True`` the features of every process are
    gathered (:func:`lightly.utils.dist.gather`, gradients flow back to their process) and
    every process builds the same list of pairs over the global batch (the subset is drawn
    from a seed shared by all processes); process ``r`` computes pairs ``r, r + W, ...``
    and the mean over pairs is taken over all processes, so the averaged DDP gradient
    equals that of the single-process loss on the concatenated batch. Every process must
    pass features of the same shape.

    Statistics of the last call are in :attr:`last_stats` (detached 0-dim tensors):
    ``loss``, ``loss_ab`` (pairs a of p, b of q), ``loss_ba``, ``matched_fraction`` (mutual
    NN tokens / valid tokens over the computed pairs; with ``max_tokens < N``: over the
    anchor candidates), ``n_anchors`` (valid anchors),
    ``n_pairs`` (pair terms that took part).

    Attributes:
        k: Number of neighbours within ``A``.
        margin: Hinge margin.
        max_pairs: Ordered subject pairs per batch, or ``None`` for all.
        negatives: ``int`` or ``"all"``.
        max_tokens: Searched rows per pair direction (see above), or ``None``: exact.
        gather_distributed: Build pairs across processes.
        seed: Seed of the pair subset and the sampling, or ``None`` for the global RNG.

    Examples:
        >>> import torch
        >>> from lightly.loss import NTXentLoss
        >>> from lightly_topo.loss import PseudoCorrespondenceLoss
        >>>
        >>> ntxent, inter = NTXentLoss(), PseudoCorrespondenceLoss()
        >>> z0, z1 = torch.randn(4, 128), torch.randn(4, 128)
        >>> dense_a = torch.randn(4, 192, 3, 3, 3, requires_grad=True)
        >>> dense_b = torch.randn(4, 192, 3, 3, 3, requires_grad=True)
        >>> loss = ntxent(z0, z1) + inter(dense_a, dense_b, subject_ids=["s1", "s2", "s3", "s4"])
        >>> loss.backward()
    """

    def __init__(
        self,
        k: int = 5,
        margin: float = 0.4,
        max_pairs: int | None = 6,
        negatives: Negatives = 5,
        max_tokens: int | None = None,
        gather_distributed: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_options(k, margin, negatives, max_tokens, gather_distributed)
        if max_pairs is not None and (
            isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 1
        ):
            raise LossInputError(f"max_pairs must be a positive int or None, got {max_pairs!r}.")
        self.k = k
        self.margin = margin
        self.max_pairs = max_pairs
        self.negatives = negatives
        self.max_tokens = max_tokens
        self.gather_distributed = gather_distributed
        self.seed = seed
        self._random = SeededRandom(seed)
        self._workspace = _ops.Workspace()
        self.last_stats: dict[str, Tensor] = {}

    def forward(
        self,
        feats_a: Tensor,
        feats_b: Tensor,
        subject_ids: SubjectIds = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Computes the loss.

        Args:
            feats_a: Dense features of modality a, ``(B, C, D, H, W)`` or tokens
                ``(B, N, C)``.
            feats_b: Features of modality b of the same subjects, same shape.
            subject_ids: One id per sample (list of str/int or 1-D tensor); samples with
                equal ids are never paired. ``None``: every sample is a different subject.
            mask: Valid tokens, bool ``(B, N)`` (or ``(B, D, H, W)``); ``None``: all.

        Returns:
            The loss, a scalar.

        Raises:
            LossInputError: On mismatched shapes, ``N < k + 2``, non-finite features, a bad
                mask or ``subject_ids`` of the wrong length.
        """
        a, b, token_mask = prepare_pair(feats_a, feats_b, mask, min_tokens=self.k + 2)
        groups = subject_groups(subject_ids, a.shape[0], a.device)
        return self.loss_from_tokens(a, b, token_mask, token_mask, groups)

    def loss_from_tokens(
        self,
        a: Tensor,
        b: Tensor,
        mask_a: Tensor,
        mask_b: Tensor,
        groups: Tensor,
        modalities: Tensor | None = None,
        grams: _grams.TokenGrams | None = None,
    ) -> Tensor:
        """The loss on checked tokens ``(B, N, C)`` with per-modality masks and group keys.

        ``modalities`` (B, 2), if given, names the modality of each sample's a and b
        tokens; a pair (p, q) is then allowed only where both of its directions compare
        two different modalities (``modalities[p, 0] != modalities[q, 1]`` and
        ``modalities[p, 1] != modalities[q, 0]``). ``grams``, if given, are the searches
        over ``cat([a, b])`` (ignored with ``gather_distributed``, where the tokens are
        those of every process).
        """
        device = a.device
        distributed = is_distributed(self.gather_distributed)
        with no_autocast(device):
            local_a, local_b = a, b
            if distributed:
                grams = None
                a = torch.cat(dist.gather(a), 0)
                b = torch.cat(dist.gather(b), 0)
                mask_a = gather_no_grad(mask_a)
                mask_b = gather_no_grad(mask_b)
                groups = gather_no_grad(groups)
                if modalities is not None:
                    modalities = gather_no_grad(modalities)
            p_idx, q_idx = self._pairs(mask_a, mask_b, groups, modalities, distributed)
            if distributed:
                rank, world = dist.rank(), dist.world_size()
                p_idx, q_idx = p_idx[rank::world], q_idx[rank::world]
            sums, counts, stats = self._pair_terms(a, b, mask_a, mask_b, p_idx, q_idx, grams)
            if distributed:
                norm = all_reduce_sum(counts).clamp(min=1) / dist.world_size()
            else:
                norm = counts.clamp(min=1)
            per_direction = sums / norm
            # keep a gradient path to every input (and to the gathered tensors, so that
            # every process takes part in the backward all-reduce)
            loss = keep_gradient_path(
                per_direction.sum(), (a, b, local_a, local_b), counts.sum() > 0, distributed
            )
        self.last_stats = {
            "loss": loss.detach(),
            "loss_ab": per_direction[0].detach(),
            "loss_ba": per_direction[1].detach(),
            **stats,
        }
        return loss

    def _pairs(
        self,
        mask_a: Tensor,
        mask_b: Tensor,
        groups: Tensor,
        modalities: Tensor | None,
        distributed: bool,
    ) -> tuple[Tensor, Tensor]:
        """Ordered pairs (p, q) of different subjects, a random subset of ``max_pairs``.

        The choice runs on CPU (one copy of the (B, B) table of allowed pairs), so that a GPU
        is synchronised once; returns CPU index tensors.
        """
        allowed = groups.unsqueeze(1) != groups.unsqueeze(0)
        if modalities is not None:
            allowed &= modalities[:, 0].unsqueeze(1) != modalities[:, 1].unsqueeze(0)
            allowed &= modalities[:, 1].unsqueeze(1) != modalities[:, 0].unsqueeze(0)
        has_a, has_b = mask_a.any(1), mask_b.any(1)
        allowed &= (has_a.unsqueeze(1) & has_b.unsqueeze(0)) | (
            has_b.unsqueeze(1) & has_a.unsqueeze(0)
        )
        p_idx, q_idx = allowed.cpu().nonzero(as_tuple=True)
        if self.max_pairs is not None and p_idx.numel() > self.max_pairs:
            seed = self._random.shared_seed(mask_a.device, distributed)
            gen = torch.Generator().manual_seed(seed)
            keep = torch.randperm(p_idx.numel(), generator=gen)[: self.max_pairs]
            p_idx, q_idx = p_idx[keep], q_idx[keep]
        return p_idx, q_idx

    def _pair_terms(
        self,
        a: Tensor,
        b: Tensor,
        mask_a: Tensor,
        mask_b: Tensor,
        p_idx: Tensor,
        q_idx: Tensor,
        grams: _grams.TokenGrams | None,
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Sums and counts (2,) of the pair terms of both directions, and statistics.

        ``p_idx``, ``q_idx`` are the CPU pair indices of :meth:`_pairs`.
        """
        n_pairs = p_idx.numel()
        zero = torch.zeros(2, dtype=a.dtype, device=a.device)
        if n_pairs == 0:
            stats = {
                "matched_fraction": zero[0].detach(),
                "n_anchors": torch.zeros((), dtype=torch.long, device=a.device),
                "n_pairs": torch.zeros((), dtype=torch.long, device=a.device),
            }
            return zero, zero, stats
        # Mutual NN between a-tokens of i and b-tokens of j, keyed (i, j). Direction 1 of
        # pair (p, q) uses key (p, q); direction 2 (b of p, a of q) uses key (q, p),
        # transposed, so both directions of (p, q) and (q, p) share one search.
        batch = a.shape[0]
        if grams is None:
            full = _ops.wants_full_grams(self.max_tokens, a.shape[1])
            grams = _grams.TokenGrams(torch.cat([a, b]), self._workspace, full)
        if self.sampled_search(a.shape[1]):
            return self._sampled_pair_terms(grams, mask_a, mask_b, p_idx, q_idx, batch)
        keys = torch.cat([p_idx * batch + q_idx, q_idx * batch + p_idx])
        unique, inverse = torch.unique(keys, return_inverse=True)
        device = a.device
        ui, uj = (unique // batch).to(device), (unique % batch).to(device)
        inverse = inverse.to(device)
        p_idx, q_idx = p_idx.to(device), q_idx.to(device)
        units = grams.unit_values
        nn_ab, nn_ba, matched_a, matched_b = _ops.mutual_nearest_neighbours(
            units[grams.stored(ui)],
            units[grams.stored(uj + batch)],
            mask_a[ui],
            mask_b[uj],
            self._workspace,
            normalized=True,
        )
        first, second = inverse[:n_pairs], inverse[n_pairs:]
        # stack both directions: anchor side X, partner side Y; sets of cat([a, b])
        x_sets = torch.cat([p_idx, p_idx + batch])
        y_sets = torch.cat([q_idx + batch, q_idx])
        mask_x = torch.cat([mask_a[p_idx], mask_b[p_idx]])
        mask_y = torch.cat([mask_b[q_idx], mask_a[q_idx]])
        nn_xy = torch.cat([nn_ab[first], nn_ba[second]])
        matched_x = torch.cat([matched_a[first], matched_b[second]])
        matched_y = torch.cat([matched_b[first], matched_a[second]])
        per_pair, valid_pair, n_anchors = self._terms(
            grams, x_sets, y_sets, mask_x, mask_y, nn_xy, matched_x, matched_y
        )
        per_pair = torch.where(valid_pair, per_pair, 0.0).view(2, n_pairs)
        sums = per_pair.sum(1)
        counts = valid_pair.view(2, n_pairs).sum(1).to(a.dtype)
        stats = {
            "matched_fraction": (matched_x.sum() / mask_x.sum().clamp(min=1)).detach().to(a.dtype),
            "n_anchors": n_anchors.detach(),
            "n_pairs": valid_pair.sum().detach(),
        }
        return sums, counts, stats

    def sampled_search(self, tokens: int) -> bool:
        """Whether the search is decided on sampled tokens (``max_tokens < N``)."""
        return self.max_tokens is not None and self.max_tokens < tokens

    def _sampled_pair_terms(
        self,
        grams: _grams.TokenGrams,
        mask_a: Tensor,
        mask_b: Tensor,
        p_idx: Tensor,
        q_idx: Tensor,
        batch: int,
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """:meth:`_pair_terms` with ``max_tokens < N``: the searches of sampled tokens only."""
        device = grams.x.device
        n_pairs = p_idx.numel()
        p_idx, q_idx = p_idx.to(device), q_idx.to(device)
        x_sets = torch.cat([p_idx, p_idx + batch])
        y_sets = torch.cat([q_idx + batch, q_idx])
        mask_x = torch.cat([mask_a[p_idx], mask_b[p_idx]])
        mask_y = torch.cat([mask_b[q_idx], mask_a[q_idx]])
        per_pair, valid_pair, n_anchors, matched_fraction = self._sampled_terms(
            grams, x_sets, y_sets, mask_x, mask_y
        )
        per_pair = torch.where(valid_pair, per_pair, 0.0).view(2, n_pairs)
        stats = {
            "matched_fraction": matched_fraction.detach().to(per_pair.dtype),
            "n_anchors": n_anchors.detach(),
            "n_pairs": valid_pair.sum().detach(),
        }
        return per_pair.sum(1), valid_pair.view(2, n_pairs).sum(1).to(per_pair.dtype), stats

    def _sampled_terms(
        self,
        grams: _grams.TokenGrams,
        x_sets: Tensor,
        y_sets: Tensor,
        mask_x: Tensor,
        mask_y: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per pair term, validity, valid anchors and the candidates' matched fraction.

        Per row (pair direction): ``c`` anchor candidates drawn from ``V_X`` and a pool of
        ``c`` tokens drawn from ``V_Y``, without replacement; the matched status of the
        candidates, their ``k`` cosine neighbours and the pool is exact (two rows each);
        the negatives are drawn from the unmatched pool tokens.
        """
        k, device = self.k, grams.x.device
        assert self.max_tokens is not None
        c = _sampled_matches.candidates(self.max_tokens, k)
        gen = self._random.generator(device)
        units = grams.unit_values
        xs, ys = grams.stored(x_sets), grams.stored(y_sets)
        anchors, anchor_valid = _ops.sample_positions(mask_x, c, gen)
        pool, pool_valid = _ops.sample_positions(mask_y, c, gen)
        neighbours, found = grams.knn(x_sets, anchors, mask_x, k, metric="cosine")
        p, n_anchor = anchors.shape
        tested = torch.cat([anchors, neighbours.view(p, -1)], 1)
        tested_valid = torch.cat([anchor_valid, found.view(p, -1)], 1)
        partners, matched = _sampled_matches.matches(
            units, xs, ys, mask_x, mask_y, tested, tested_valid
        )
        _, pool_matched = _sampled_matches.matches(units, ys, xs, mask_y, mask_x, pool, pool_valid)
        partner = partners[:, :n_anchor]
        positives = partners[:, n_anchor:].view(p, n_anchor, k)
        anchor_matched = matched[:, :n_anchor]
        kept = matched[:, n_anchor:].view(p, n_anchor, k) & anchor_matched.unsqueeze(-1)
        unmatched = pool_valid & ~pool_matched
        has_unmatched = unmatched.any(1)
        # fallback where the whole pool is matched: the pool without the partner and positives
        candidates = pool.view(p, 1, -1, 1)
        taken = (candidates == partner.view(p, n_anchor, 1, 1)).squeeze(-1)
        taken |= ((candidates == positives.unsqueeze(2)) & kept.unsqueeze(2)).any(-1)
        fallback = pool_valid.unsqueeze(1) & ~taken
        neg_valid = torch.where(has_unmatched.view(-1, 1, 1), unmatched.unsqueeze(1), fallback)
        n_kept = kept.sum(-1)
        n_neg = neg_valid.sum(-1)
        anchor_ok = anchor_matched & (n_kept > 0) & (n_neg > 0)
        if self.negatives == "all":
            cols = torch.cat([positives, pool.unsqueeze(1).expand(p, n_anchor, -1)], -1)
            d = 1.0 - grams.similarity(y_sets, partner, cols)
            total = _ops.hinge_sum(d[..., :k], d[..., k:], kept, neg_valid, self.margin)
            per_anchor = total / (n_kept * n_neg).clamp(min=1)
        else:
            s = int(self.negatives)
            negs = _sampled_matches.draw_from(pool, neg_valid, k * s, gen)
            per_anchor = self._sampled_hinges(grams, y_sets, partner, positives, negs, kept)
        per_pair, valid_pair, n_ok = _pair_means(per_anchor, anchor_ok)
        fraction = anchor_matched.sum() / anchor_valid.sum().clamp(min=1)
        return per_pair, valid_pair, n_ok, fraction

    def _sampled_hinges(
        self,
        grams: _grams.TokenGrams,
        y_sets: Tensor,
        partner: Tensor,
        positives: Tensor,
        negs: Tensor,
        kept: Tensor,
    ) -> Tensor:
        """Per anchor term (P, A) with ``s`` drawn negatives (P, A, k * s) per positive."""
        k, s = self.k, int(self.negatives)
        p, n_anchor = partner.shape
        cols = torch.cat([positives, negs.view(p, n_anchor, k * s)], -1)
        d = 1.0 - grams.similarity(y_sets, partner, cols)
        d_pos, d_neg = d[..., :k], d[..., k:].view(p, n_anchor, k, s)
        hinge = F.relu(d_pos.unsqueeze(-1) - d_neg + self.margin)
        hinge = torch.where(kept.unsqueeze(-1), hinge, 0.0)
        return hinge.sum((-1, -2)) / (kept.sum(-1) * s).clamp(min=1)

    def _terms(
        self,
        grams: _grams.TokenGrams,
        x_sets: Tensor,
        y_sets: Tensor,
        mask_x: Tensor,
        mask_y: Tensor,
        nn_xy: Tensor,
        matched_x: Tensor,
        matched_y: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per pair term (P,), whether the pair has a valid anchor (P,), valid anchors."""
        k = self.k
        device = grams.x.device
        gen = self._random.generator(device)
        if self.max_tokens is not None and self.max_tokens < grams.tokens:
            anchors, anchor_valid = _ops.sample_positions(matched_x, self.max_tokens, gen)
        else:
            anchors, anchor_valid = _ops.valid_positions(matched_x)
        neighbours, found = grams.knn(x_sets, anchors, mask_x, k, metric="cosine")
        kept = _ops.gather_values(matched_x, neighbours) & found & anchor_valid.unsqueeze(-1)
        partner = _ops.gather_values(nn_xy, anchors)
        positives = _ops.gather_values(nn_xy, neighbours)
        unmatched = mask_y & ~matched_y
        has_unmatched = unmatched.any(1)
        n_kept = kept.sum(-1)
        exclude = torch.cat([partner.unsqueeze(-1), positives], -1)
        exclude_valid = torch.cat([anchor_valid.unsqueeze(-1), kept], -1)
        n_fallback = mask_y.sum(1, keepdim=True) - exclude_valid.sum(-1)
        n_neg = torch.where(has_unmatched.unsqueeze(1), unmatched.sum(1, keepdim=True), n_fallback)
        anchor_ok = anchor_valid & (n_kept > 0) & (n_neg > 0)
        if self.negatives == "all":
            d_pos = 1.0 - grams.similarity(y_sets, partner, positives)
            yn = grams.units(y_sets)
            y_partner = _ops.gather_tokens(yn, partner)
            d_all = 1.0 - torch.bmm(y_partner, yn.transpose(1, 2))
            excluded = torch.zeros(d_all.shape, dtype=torch.int32, device=device)
            excluded.scatter_add_(2, exclude, exclude_valid.to(torch.int32))
            fallback = mask_y.unsqueeze(1) & (excluded == 0)
            neg_valid = torch.where(has_unmatched.view(-1, 1, 1), unmatched.unsqueeze(1), fallback)
            total = _ops.hinge_sum(d_pos, d_all, kept, neg_valid, self.margin)
            per_anchor = total / (n_kept * n_neg).clamp(min=1)
        else:
            s = int(self.negatives)
            p, n_anchor = anchors.shape
            no_exclusion = torch.zeros(p, n_anchor, 0, dtype=torch.long, device=device)
            neg_unmatched, _ = _ops.sample_excluding(
                unmatched, no_exclusion, no_exclusion.bool(), k * s, gen
            )
            if not anchors.is_cuda and bool(has_unmatched.all()):
                negs = neg_unmatched  # no pair needs the fallback
            else:
                neg_fallback, _ = _ops.sample_excluding(mask_y, exclude, exclude_valid, k * s, gen)
                negs = torch.where(has_unmatched.view(-1, 1, 1), neg_unmatched, neg_fallback)
            per_anchor = self._sampled_hinges(grams, y_sets, partner, positives, negs, kept)
        return _pair_means(per_anchor, anchor_ok)


def _pair_means(per_anchor: Tensor, anchor_ok: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per pair mean over the valid anchors (P,), whether a pair has one (P,), their count."""
    per_anchor = torch.where(anchor_ok, per_anchor, 0.0)
    n_ok = anchor_ok.sum(1)
    per_pair = per_anchor.sum(1) / n_ok.clamp(min=1)
    return per_pair, n_ok > 0, n_ok.sum()
