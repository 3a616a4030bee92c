"""Collapse monitors for online logging of dense and pooled embeddings.

All monitors run without gradient and return detached 0-dim float32 tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightly_topo.loss import _ops
from lightly_topo.loss._tokens import LossInputError, as_token_mask, as_tokens, no_autocast


def _rows(z: Tensor, name: str) -> Tensor:
    """Embeddings as rows (R, C): (B, C) as is, tokens (B, N, C) and maps flattened."""
    if not isinstance(z, Tensor):
        raise LossInputError(f"{name} must be a torch.Tensor, got {type(z).__name__}.")
    if z.ndim == 2:
        rows = z
    elif z.ndim in (3, 5):
        rows = as_tokens(z, name).reshape(-1, z.shape[1] if z.ndim == 5 else z.shape[2])
    else:
        raise LossInputError(
            f"{name} must be (B, C), tokens (B, N, C) or a map (B, C, D, H, W), got "
            f"{tuple(z.shape)}."
        )
    if rows.shape[0] < 2:
        raise LossInputError(f"{name} needs at least 2 embeddings, got {rows.shape[0]}.")
    return rows.float()


@torch.no_grad()
def embedding_std(z: Tensor) -> Tensor:
    """Mean over dimensions of the std of the L2-normalised embeddings [0].

    0 means collapse to a constant vector; an isotropic Gaussian gives about
    ``1 / sqrt(C)``. Same as :func:`lightly.utils.debug.std_of_l2_normalized`, extended to
    tokens and dense maps (every token is one embedding).

    - [0] SimSiam, 2020, https://arxiv.org/abs/2011.10566

    Args:
        z: Embeddings (B, C), tokens (B, N, C) or a dense map (B, C, D, H, W).

    Examples:
        >>> import torch
        >>> from lightly_topo.loss.monitors import embedding_std
        >>> z = torch.randn(64, 128)
        >>> 0.08 < float(embedding_std(z)) < 0.1
        True
    """
    rows = _rows(z, "z")
    with no_autocast(rows.device):
        normed = torch.nn.functional.normalize(rows, dim=1)
        return normed.std(dim=0).mean()


@torch.no_grad()
def effective_rank(z: Tensor, eps: float = 1e-7) -> Tensor:
    """Effective rank of embeddings: ``exp`` of the entropy of the normalised singular values [0].

    With ``s`` the singular values of the (uncentred) embedding matrix and
    ``p = s / sum(s) + eps``, the rank is ``exp(-sum(p log p))``: between 1 (collapse to one
    direction) and ``min(R, C)``.

    - [0] RankMe, Garrido et al., 2023, https://arxiv.org/abs/2210.02885

    Args:
        z: Embeddings (B, C), tokens (B, N, C) or a dense map (B, C, D, H, W).
        eps: Added to the normalised singular values.

    Examples:
        >>> import torch
        >>> from lightly_topo.loss.monitors import effective_rank
        >>> z = torch.randn(256, 32)
        >>> float(effective_rank(z)) > 25
        True
    """
    rows = _rows(z, "z")
    with no_autocast(rows.device):
        s = torch.linalg.svdvals(rows)
        p = s / s.sum().clamp(min=torch.finfo(s.dtype).tiny) + eps
        return torch.exp(-(p * p.log()).sum())


@torch.no_grad()
def matched_fraction(feats_a: Tensor, feats_b: Tensor, mask: Tensor | None = None) -> Tensor:
    """Fraction of valid tokens of ``a`` that are mutual nearest neighbours (cosine) in ``b``.

    Computed per sample between its two modalities and averaged over the valid tokens of
    the batch. A fraction near 1 means the two modalities' token sets coincide up to a
    permutation; :class:`~lightly_topo.loss.PseudoCorrespondenceLoss` logs the same
    quantity across subjects in ``last_stats["matched_fraction"]``.

    Args:
        feats_a: Maps (B, C, D, H, W) or tokens (B, N, C).
        feats_b: Same shape.
        mask: Valid tokens, bool (B, N); ``None``: all.

    Examples:
        >>> import torch
        >>> from lightly_topo.loss.monitors import matched_fraction
        >>> x = torch.randn(2, 16, 27)
        >>> float(matched_fraction(x.transpose(1, 2), x.transpose(1, 2)))
        1.0
    """
    a = as_tokens(feats_a, "feats_a")
    b = as_tokens(feats_b, "feats_b")
    if a.shape != b.shape:
        raise LossInputError(
            f"feats_a and feats_b must have the same shape, got {tuple(feats_a.shape)} and "
            f"{tuple(feats_b.shape)}."
        )
    token_mask = as_token_mask(mask, a.shape[0], a.shape[1], a.device)
    with no_autocast(a.device):
        _, _, matched, _ = _ops.mutual_nearest_neighbours(
            a.float(), b.float(), token_mask, token_mask
        )
    return matched.sum() / token_mask.sum().clamp(min=1).float()
