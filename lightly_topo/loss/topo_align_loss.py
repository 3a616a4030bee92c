"""TACO topological alignment loss: intra-instance plus inter-instance terms."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from lightly_topo.loss import _grams, _ops
from lightly_topo.loss._tokens import (
    LossInputError,
    Negatives,
    SubjectIds,
    as_token_mask,
    as_tokens,
    check_finite,
    no_autocast,
    prepare_pair,
    subject_groups,
)
from lightly_topo.loss.cross_modal_triplet_loss import CrossModalTripletLoss
from lightly_topo.loss.pseudo_correspondence_loss import PseudoCorrespondenceLoss

Features = Tensor | Mapping[str, Tensor]


class TopoAlignLoss(nn.Module):
    """TACO topological alignment loss [0]: ``intra_weight * intra + inter_weight * inter``.

    ``intra`` is :class:`~lightly_topo.loss.CrossModalTripletLoss` (the neighbourhoods of a
    subject's tokens in one modality are kept in the other) and ``inter`` is
    :class:`~lightly_topo.loss.PseudoCorrespondenceLoss` (mutual-NN pseudo-correspondences
    between different subjects' modalities). The default weights (10 and 10) are those of
    the authors' released recipe. Both terms share one set of Gram matrices (one per
    sample and modality) for their neighbour searches and similarities.

    - [0] Beyond Instance-Level Self-Supervision in 3D Multi-Modal Medical Imaging
      (TACO), ICML 2026.

    Inputs:
        - Two modalities: ``loss(feats_a, feats_b, subject_ids, mask)`` with maps
          ``(B, C, D, H, W)`` or tokens ``(B, N, C)``.
        - More modalities: ``loss(stack, subject_ids=..., mask=..., modality_mask=...)``
          with a stack ``(B, M, C, D, H, W)`` or ``(B, M, N, C)`` and availability
          ``modality_mask`` bool ``(B, M)`` (``None``: all available), or a dict
          ``{modality: (B, C, D, H, W) | (B, N, C)}`` with ``modality_mask`` ``(B, M)`` in the
          dict's order. Unavailable modalities are never read (their tokens are masked).

    With more than two modalities, ``modality_pairs`` chooses the pairs:
        - ``"all"``: every modality pair ``(m1 < m2)`` of every subject that has both. The
          pairs are stacked along the batch, so ``intra`` is the mean over (subject, pair).
          ``max_pairs`` is the budget of the whole call (raise it with many modalities).
          Each modality map is stored, multiplied and searched for neighbours once, not
          once per pair it belongs to.
        - ``"random"``: one random available pair ``(m1 < m2)`` per subject (reproducible
          with ``seed``).

        In both, ``inter`` pairs the ``m1`` tokens of ``p`` with the ``m2`` tokens of ``q`` (and
        ``m2`` of ``p`` with ``m1`` of ``q``), and only where both comparisons are between two
        different modalities, so the inter-instance term stays cross-modal.

    Statistics of the last call are in :attr:`last_stats` (detached 0-dim tensors):
    ``loss``, ``intra``, ``inter`` (unweighted), ``matched_fraction``,
    ``n_anchors_intra``, ``n_anchors_inter``, ``n_pairs``; the two terms' own statistics
    are in ``self.intra.last_stats`` and ``self.inter.last_stats``.

    Args:
        intra_weight: Weight of the intra-instance term (0 skips it).
        inter_weight: Weight of the inter-instance term (0 skips it).
        k: Neighbours of both terms.
        intra_margin: Margin of the intra-instance term.
        inter_margin: Margin of the inter-instance term.
        max_pairs: Subject pairs per batch of the inter-instance term (``None``: all).
        negatives: ``int`` or ``"all"``, for both terms.
        max_tokens: Bound on the searched rows: anchors per subject of the intra term,
            rows per pair direction of the inter term (see the two terms), or ``None``.
        gather_distributed: Pairs across processes (see the two terms).
        seed: Seed of all sampling, or ``None`` for the global RNG.
        modality_pairs: ``"all"`` or ``"random"`` (more than two modalities only).

    Examples:
        >>> import torch
        >>> from lightly.loss import NTXentLoss
        >>> from lightly_topo.loss import TopoAlignLoss
        >>>
        >>> ntxent, topo = NTXentLoss(), TopoAlignLoss()
        >>> z0, z1 = torch.randn(4, 128), torch.randn(4, 128)
        >>> dense_a = torch.randn(4, 192, 3, 3, 3, requires_grad=True)
        >>> dense_b = torch.randn(4, 192, 3, 3, 3, requires_grad=True)
        >>> loss = ntxent(z0, z1) + topo(dense_a, dense_b, subject_ids=[0, 1, 2, 3])
        >>> loss.backward()
        >>> float(topo.last_stats["matched_fraction"]) >= 0.0
        True
    """

    def __init__(
        self,
        intra_weight: float = 10.0,
        inter_weight: float = 10.0,
        k: int = 5,
        intra_margin: float = 0.05,
        inter_margin: float = 0.4,
        max_pairs: int | None = 6,
        negatives: Negatives = 5,
        max_tokens: int | None = None,
        gather_distributed: bool = False,
        seed: int | None = None,
        modality_pairs: str = "all",
    ) -> None:
        super().__init__()
        if modality_pairs not in ("all", "random"):
            raise LossInputError(
                f'modality_pairs must be "all" or "random", got {modality_pairs!r}.'
            )
        self.intra_weight = intra_weight
        self.inter_weight = inter_weight
        self.modality_pairs = modality_pairs
        self.k = k
        self.seed = seed
        self.intra = CrossModalTripletLoss(
            k=k,
            margin=intra_margin,
            negatives=negatives,
            max_tokens=max_tokens,
            gather_distributed=gather_distributed,
            seed=seed,
        )
        self.inter = PseudoCorrespondenceLoss(
            k=k,
            margin=inter_margin,
            max_pairs=max_pairs,
            negatives=negatives,
            max_tokens=max_tokens,
            gather_distributed=gather_distributed,
            seed=None if seed is None else seed + 1,
        )
        self._choice = torch.Generator()
        if seed is not None:
            self._choice.manual_seed(seed + 2)
        else:
            self._choice.seed()
        self._workspace = _ops.Workspace()
        self.last_stats: dict[str, Tensor] = {}

    def forward(
        self,
        feats_a: Features,
        feats_b: Tensor | None = None,
        subject_ids: SubjectIds = None,
        mask: Tensor | None = None,
        modality_mask: Tensor | None = None,
    ) -> Tensor:
        """Computes the loss.

        Args:
            feats_a: Features of modality a (then ``feats_b`` is required), or a stack of
                M modalities ``(B, M, C, D, H, W)`` / ``(B, M, N, C)``, or a dict of
                modality -> features.
            feats_b: Features of modality b, same shape as ``feats_a``; ``None`` with a
                stack or a dict.
            subject_ids: One id per sample (list of str/int or 1-D tensor); ``None``:
                every sample is a different subject.
            mask: Valid tokens, bool ``(B, N)`` (or ``(B, D, H, W)``); ``None``: all.
            modality_mask: Available modalities, bool ``(B, M)`` for a stack or a dict, or
                ``(B, 2)`` for ``feats_a`` and ``feats_b``: a subject without both is left
                out of the two-argument form. Without it, a sample whose features are all
                zero in ``feats_a`` or ``feats_b`` (what an encoder gives for a missing
                modality) raises, rather than being aligned to zeros.

        Returns:
            The loss, a scalar.

        Raises:
            LossInputError: On bad shapes, masks, ids or non-finite features, or an all-zero
                sample in the two-argument form without ``modality_mask``.
        """
        if feats_b is not None:
            if not isinstance(feats_a, Tensor):
                raise LossInputError(
                    "feats_a must be a tensor when feats_b is given; pass a dict or a "
                    "stack (B, M, ...) alone for more than two modalities."
                )
            a, b, token_mask = prepare_pair(feats_a, feats_b, mask, min_tokens=self.k + 2)
            if modality_mask is not None:
                both = self._modality_mask(modality_mask, a.shape[0], 2, a.device).all(1)
                token_mask = token_mask & both.unsqueeze(1)
            else:
                _refuse_zero_samples(a, b, token_mask)
            groups = subject_groups(subject_ids, a.shape[0], a.device)
            return self._combine(a, b, token_mask, token_mask, groups, None)
        stack = self._stack(feats_a)
        batch, n_mod, n_tok, _ = stack.shape
        avail = self._modality_mask(modality_mask, batch, n_mod, stack.device)
        token_mask = as_token_mask(mask, batch, n_tok, stack.device)
        # unavailable modalities and masked tokens are never read (zeroed, not checked)
        stack = check_finite(stack, avail.unsqueeze(-1) & token_mask.unsqueeze(1), "feats_a")
        groups = subject_groups(subject_ids, batch, stack.device)
        first, second = torch.triu_indices(n_mod, n_mod, offset=1, device=stack.device)
        both = avail[:, first] & avail[:, second]
        if self.modality_pairs == "all":
            n_pairs = first.numel()
            a = stack[:, first].transpose(0, 1).reshape(n_pairs * batch, n_tok, -1)
            b = stack[:, second].transpose(0, 1).reshape(n_pairs * batch, n_tok, -1)
            keep = both.transpose(0, 1).reshape(-1, 1)
            sample_mask = token_mask.repeat(n_pairs, 1) & keep
            modalities = torch.stack([first, second], 1).repeat_interleave(batch, 0)
            stored = None
            if n_pairs > 1:
                # every modality is in several pairs: store (and search) it once
                samples = torch.arange(batch, device=stack.device).repeat(n_pairs) * n_mod
                alias = torch.cat(
                    [
                        samples + first.repeat_interleave(batch),
                        samples + second.repeat_interleave(batch),
                    ]
                )
                valid = (avail.unsqueeze(-1) & token_mask.unsqueeze(1)).flatten(0, 1)
                stored = (stack.reshape(batch * n_mod, n_tok, -1), alias, valid)
            return self._combine(
                a, b, sample_mask, sample_mask, groups.repeat(n_pairs), modalities, stored
            )
        scores = torch.rand(both.shape, generator=self._choice).to(stack.device)
        choice = scores.masked_fill(~both, -1.0).argmax(1)
        rows = torch.arange(batch, device=stack.device)
        a = stack[rows, first[choice]]
        b = stack[rows, second[choice]]
        sample_mask = token_mask & both.any(1, keepdim=True)
        modalities = torch.stack([first[choice], second[choice]], 1)
        return self._combine(a, b, sample_mask, sample_mask, groups, modalities)

    def _stack(self, feats: Features) -> Tensor:
        if isinstance(feats, Mapping):
            if len(feats) < 2:
                raise LossInputError(
                    f"the dict of modality features needs at least 2 modalities, got {list(feats)}."
                )
            parts = [as_tokens(v, f"feats_a[{name!r}]") for name, v in feats.items()]
            shapes = {tuple(p.shape) for p in parts}
            if len(shapes) != 1:
                raise LossInputError(
                    f"every modality in the dict must have the same shape, got "
                    f"{ {n: tuple(v.shape) for n, v in feats.items()} }."
                )
            stack = torch.stack(parts, 1)
        elif isinstance(feats, Tensor) and feats.ndim in (4, 6):
            stack = feats.flatten(3).transpose(2, 3) if feats.ndim == 6 else feats
        else:
            shape = tuple(feats.shape) if isinstance(feats, Tensor) else type(feats).__name__
            raise LossInputError(
                f"with feats_b=None, feats_a must be a stack (B, M, C, D, H, W) or "
                f"(B, M, N, C) or a dict of modality -> features, got {shape}."
            )
        if stack.shape[1] < 2:
            raise LossInputError(f"the stack needs M >= 2 modalities, got {tuple(stack.shape)}.")
        if stack.shape[2] < self.k + 2:
            raise LossInputError(
                f"the features have N = {stack.shape[2]} tokens but the loss needs at least "
                f"k + 2 = {self.k + 2}; lower k or use a larger feature map."
            )
        if not stack.is_floating_point():
            raise LossInputError(
                f"the modality features must be floating point, got {stack.dtype}."
            )
        return stack

    @staticmethod
    def _modality_mask(
        modality_mask: Tensor | None, batch: int, n_mod: int, device: torch.device
    ) -> Tensor:
        if modality_mask is None:
            return torch.ones(batch, n_mod, dtype=torch.bool, device=device)
        if (
            not isinstance(modality_mask, Tensor)
            or modality_mask.dtype != torch.bool
            or tuple(modality_mask.shape) != (batch, n_mod)
        ):
            got = (
                f"{tuple(modality_mask.shape)} {modality_mask.dtype}"
                if isinstance(modality_mask, Tensor)
                else type(modality_mask).__name__
            )
            raise LossInputError(
                f"modality_mask must be a bool tensor (B, M) = ({batch}, {n_mod}), got {got}."
            )
        return modality_mask.to(device)

    def _combine(
        self,
        a: Tensor,
        b: Tensor,
        mask_a: Tensor,
        mask_b: Tensor,
        groups: Tensor,
        modalities: Tensor | None,
        stored: tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Both terms on the tokens ``a``, ``b`` (B', N, C).

        ``stored``, if given, is ``(tokens, alias, mask)``: the distinct token sets
        (S, N, C) of a stack with their valid tokens (S, N), and the stored set of each row
        of ``cat([a, b])``, so that a modality used by several modality pairs is searched
        once.
        """
        zero = a.new_zeros(())
        stats: dict[str, Tensor] = {}
        intra = inter = zero
        # one set of Gram matrices serves both terms' searches
        grams = None
        if stored is not None or (self.intra_weight != 0 and self.inter_weight != 0):
            with no_autocast(a.device):
                full = _ops.wants_full_grams(self.intra.max_tokens, a.shape[1])
                if stored is None:
                    grams = _grams.TokenGrams(torch.cat([a, b]), self._workspace, full)
                else:
                    tokens, alias, valid = stored
                    grams = _grams.TokenGrams(
                        tokens, self._workspace, full, alias=alias, stored_mask=valid
                    )
        if self.intra_weight != 0:
            intra = self.intra.loss_from_tokens(a, b, mask_a, mask_b, grams)
            stats["n_anchors_intra"] = self.intra.last_stats["n_anchors"]
        if self.inter_weight != 0:
            inter = self.inter.loss_from_tokens(a, b, mask_a, mask_b, groups, modalities, grams)
            stats["n_anchors_inter"] = self.inter.last_stats["n_anchors"]
            stats["matched_fraction"] = self.inter.last_stats["matched_fraction"]
            stats["n_pairs"] = self.inter.last_stats["n_pairs"]
        loss = self.intra_weight * intra + self.inter_weight * inter
        if self.intra_weight == 0 and self.inter_weight == 0:
            loss = loss + 0.0 * (a.sum() + b.sum())
        self.last_stats = {
            "loss": loss.detach(),
            "intra": intra.detach(),
            "inter": inter.detach(),
            **stats,
        }
        return loss


def _refuse_zero_samples(a: Tensor, b: Tensor, token_mask: Tensor) -> None:
    """Raise where a sample's valid tokens are all zero in ``a`` or ``b`` ``(B, N, C)``."""
    valid = token_mask.unsqueeze(-1)
    for name, x in (("feats_a", a), ("feats_b", b)):
        zero = ((x == 0) | ~valid).flatten(1).all(1) & token_mask.any(1)
        if bool(zero.any()):
            samples = zero.nonzero().flatten().tolist()
            raise LossInputError(
                f"{name} is all zeros for sample(s) {samples[:8]}: a missing modality? Pass "
                "modality_mask=(B, 2) bool (which of the two modalities each subject has) to "
                "leave those subjects out, or use the stack form with modality_mask."
            )
