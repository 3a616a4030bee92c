"""Input handling shared by the TACO losses: tokens, masks, subject ids, dtypes, randomness.

Private module. Dense maps ``(B, C, D, H, W)`` become tokens ``(B, N, C)`` with
``N = D*H*W`` in C order and the channels last (``x.flatten(2).transpose(1, 2)``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import overload

import torch
from lightly.utils import dist
from torch import Tensor
from torch import distributed as torch_dist

from lightly_topo.errors import LightlyTopoError

#: Negative mode of the TACO losses: a number of sampled negatives or ``"all"``.
Negatives = int | str

#: Subject identifiers as accepted by the losses.
SubjectIds = Sequence[str | int] | Tensor | None


class LossInputError(LightlyTopoError, ValueError):
    """Features, masks or subject ids that a TACO loss cannot use."""


def check_options(
    k: int,
    margin: float,
    negatives: Negatives,
    max_tokens: int | None,
    gather_distributed: bool = False,
) -> None:
    """Raises :class:`LossInputError` on bad constructor options shared by the TACO losses."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise LossInputError(f"k must be a positive int, got {k!r}.")
    if margin < 0:
        raise LossInputError(f"margin must be >= 0, got {margin!r}.")
    if negatives != "all" and (
        isinstance(negatives, bool) or not isinstance(negatives, int) or negatives < 1
    ):
        raise LossInputError(f'negatives must be a positive int or "all", got {negatives!r}.')
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise LossInputError(f"max_tokens must be a positive int or None, got {max_tokens!r}.")
    if gather_distributed and not torch_dist.is_available():
        raise LossInputError(
            "gather_distributed is True but torch.distributed is not available. Set "
            "gather_distributed=False or install a torch build with distributed support."
        )


def as_tokens(x: Tensor, name: str) -> Tensor:
    """Returns tokens ``(B, N, C)`` from a map ``(B, C, D, H, W)`` or tokens ``(B, N, C)``."""
    if not isinstance(x, Tensor):
        raise LossInputError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim == 5:
        return x.flatten(2).transpose(1, 2)
    if x.ndim == 3:
        return x
    raise LossInputError(
        f"{name} must be a dense map (B, C, D, H, W) or tokens (B, N, C), got shape "
        f"{tuple(x.shape)}."
    )


def as_token_mask(mask: Tensor | None, batch: int, tokens: int, device: torch.device) -> Tensor:
    """Returns a bool mask ``(B, N)``; accepts ``(B, N)``, ``(B, D, H, W)`` or ``(B, 1, D, H, W)``."""
    if mask is None:
        return torch.ones(batch, tokens, dtype=torch.bool, device=device)
    if not isinstance(mask, Tensor):
        raise LossInputError(f"mask must be a bool torch.Tensor, got {type(mask).__name__}.")
    if mask.dtype != torch.bool:
        raise LossInputError(
            f"mask must be a bool tensor (True = valid token), got dtype {mask.dtype}."
        )
    flat = mask.reshape(mask.shape[0], -1) if mask.ndim >= 2 else mask
    if flat.ndim != 2 or tuple(flat.shape) != (batch, tokens):
        raise LossInputError(
            f"mask must have shape (B, N) = ({batch}, {tokens}) (or (B, D, H, W) with "
            f"D*H*W = N), got {tuple(mask.shape)}."
        )
    return flat.to(device)


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype of the distance math: float32, or float64 for float64 input."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def no_autocast(device: torch.device) -> AbstractContextManager[None]:
    """Context in which the distance math runs at full precision under autocast."""
    return torch.autocast(device_type=device.type, enabled=False)


def prepare_pair(
    feats_a: Tensor, feats_b: Tensor, mask: Tensor | None, min_tokens: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Checks two modalities' features and returns tokens ``(B, N, C)`` (float) and mask ``(B, N)``.

    Raises:
        LossInputError: On mismatched shapes, too few tokens, non-finite values or a bad mask.
    """
    a = as_tokens(feats_a, "feats_a")
    b = as_tokens(feats_b, "feats_b")
    if feats_a.shape != feats_b.shape:
        raise LossInputError(
            f"feats_a and feats_b must have the same shape (the two modalities of the same "
            f"subjects on the same grid), got {tuple(feats_a.shape)} and {tuple(feats_b.shape)}."
        )
    batch, tokens, channels = a.shape
    if batch == 0 or channels == 0:
        raise LossInputError(f"feats_a is empty: shape {tuple(feats_a.shape)}.")
    if tokens < min_tokens:
        raise LossInputError(
            f"feats_a has N = {tokens} tokens per sample but the loss needs at least "
            f"{min_tokens} (k neighbours plus the anchor plus one non-neighbour); lower k or "
            f"use a larger feature map."
        )
    token_mask = as_token_mask(mask, batch, tokens, a.device)
    a, b = check_finite(a, token_mask, "feats_a", b, "feats_b")
    return a, b, token_mask


@overload
def check_finite(x: Tensor, mask: Tensor, name: str) -> Tensor: ...


@overload
def check_finite(
    x: Tensor, mask: Tensor, name: str, y: Tensor, y_name: str
) -> tuple[Tensor, Tensor]: ...


def check_finite(
    x: Tensor, mask: Tensor, name: str, y: Tensor | None = None, y_name: str = ""
) -> Tensor | tuple[Tensor, Tensor]:
    """Checks that the valid tokens ``(..., N, C)`` of ``x`` (and ``y``) are finite.

    Returns ``x`` (and ``y``) in the compute dtype with the masked tokens set to zero (they
    are never read, not even as NaN). All checks share one device synchronisation.
    """
    named = [(x, name)] if y is None else [(x, name), (y, y_name)]
    for t, t_name in named:
        if not t.is_floating_point():
            raise LossInputError(f"{t_name} must be a floating point tensor, got {t.dtype}.")
    # a finite sum proves every element finite (NaN and Inf propagate); only where a sum is
    # not finite (a bad value, masked or not, or an overflow) are the elements checked
    sums = [
        t.sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32) for t, _ in named
    ]
    flags = torch.stack([torch.isfinite(v) for v in sums] + [mask.all()]).tolist()
    for (t, t_name), ok in zip(named, flags):
        if not ok and not bool((torch.isfinite(t).all(-1) | ~mask).all()):
            raise LossInputError(
                f"{t_name} contains NaN or Inf values in valid tokens; check the encoder "
                f"output (e.g. a diverged run or an overflow under float16)."
            )
    out = [t.to(compute_dtype(t)) for t, _ in named]
    if not flags[-1]:
        out = [t.masked_fill(~mask.unsqueeze(-1), 0.0) for t in out]
    return out[0] if y is None else (out[0], out[1])


def subject_groups(subject_ids: SubjectIds, batch: int, device: torch.device) -> Tensor:
    """Returns int64 ``(B,)`` keys, equal exactly for samples of the same subject.

    Ids are compared by their string form (``1`` and ``"1"`` are the same subject) and
    hashed, so that the keys agree across processes. ``None``: every sample is a subject.
    """
    if subject_ids is None:
        return -1 - torch.arange(batch, device=device)
    if isinstance(subject_ids, Tensor):
        if subject_ids.ndim != 1:
            raise LossInputError(
                f"subject_ids must be 1-D with one id per sample, got shape "
                f"{tuple(subject_ids.shape)}."
            )
        values: list[str | int] = [v for v in subject_ids.tolist()]
    elif isinstance(subject_ids, str) or not isinstance(subject_ids, Sequence):
        raise LossInputError(
            f"subject_ids must be a list of str/int or a 1-D tensor, got "
            f"{type(subject_ids).__name__}."
        )
    else:
        values = list(subject_ids)
    if len(values) != batch:
        raise LossInputError(
            f"subject_ids has {len(values)} entries but the batch has B = {batch} samples."
        )
    keys = [
        int.from_bytes(hashlib.blake2b(str(v).encode(), digest_size=7).digest(), "little")
        for v in values
    ]
    return torch.tensor(keys, dtype=torch.long, device=device)


def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenates ``x`` from every process along dim 0, without gradient."""
    parts = [torch.empty_like(x) for _ in range(dist.world_size())]
    torch_dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, 0)


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of ``x`` over processes (no gradient); ``x`` itself when not distributed."""
    if dist.world_size() == 1:
        return x
    y = x.detach().clone()
    torch_dist.all_reduce(y)
    return y


def keep_gradient_path(
    loss: Tensor, inputs: Sequence[Tensor], has_terms: Tensor, force: bool
) -> Tensor:
    """``loss + 0 * sum(inputs)`` where the loss may have no gradient path to ``inputs``.

    Needed when no term took part (``has_terms`` is False), and with ``force`` (e.g. in
    distributed mode, where every process must take part in the backward collectives).
    On a GPU it is always added (checking ``has_terms`` would synchronise); on CPU it is
    skipped otherwise, since the zero gradients cost full passes over the features.
    """
    if force or loss.is_cuda or not bool(has_terms):
        return loss + 0.0 * sum(x.sum() for x in inputs)
    return loss


def is_distributed(gather_distributed: bool) -> bool:
    return gather_distributed and dist.world_size() > 1


class SeededRandom:
    """Reproducible randomness of a loss.

    With ``seed=None`` the global torch RNG is used. With a seed, a generator per device
    is created on first use and advances from call to call, so a run is reproducible
    from the loss's construction. :meth:`shared_seed` gives a seed that is the same on
    every process (for choices that must agree across ranks, e.g. the pair subset).
    """

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}
        self._calls = 0

    def generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed + 1_000_003 * dist.rank())
            self._generators[key] = gen
        return self._generators[key]

    def shared_seed(self, device: torch.device, distributed: bool) -> int:
        """A seed equal on every process: from ``seed`` and the call count, or broadcast."""
        self._calls += 1
        if self.seed is not None:
            return (self.seed * 1_000_003 + self._calls) % (2**62)
        if not distributed:
            return int(torch.randint(0, 2**62, (1,)).item())
        value = torch.randint(0, 2**62, (1,), device=device)
        torch_dist.broadcast(value, src=0)
        return int(value.item())
