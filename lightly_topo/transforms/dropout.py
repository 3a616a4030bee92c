"""Modality dropout: drop a random subset of a subject's available modalities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lightly_topo.transforms.errors import TransformInputError
from lightly_topo.transforms.random import (
    GeneratorLike,
    RandomState,
    bernoulli,
    check_probability,
    randint,
    resolve_generator,
)


@dataclass(frozen=True)
class DropoutParams:
    keep: Tensor  # bool (M,): modalities that stay available


def check_mask(mask: Tensor, num_modalities: int | None = None, name: str = "mask") -> Tensor:
    """``mask`` if it is a bool ``(M,)`` tensor with at least one ``True``."""
    if not isinstance(mask, Tensor) or mask.dim() != 1 or mask.dtype != torch.bool:
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        dtype = mask.dtype if isinstance(mask, Tensor) else None
        raise TransformInputError(
            f"{name} must be a bool tensor of shape (M,), got {shape} with dtype {dtype}"
        )
    if num_modalities is not None and mask.numel() != num_modalities:
        raise TransformInputError(
            f"{name} has {mask.numel()} entries, expected M = {num_modalities}"
        )
    if not bool(mask.any()):
        raise TransformInputError(
            f"{name} marks no modality as available; a subject needs at least one"
        )
    return mask


class RandomModalityDropout:
    """With probability ``p``, drop a random subset of the available modalities, keeping
    at least one.

    The number kept is uniform in ``1 .. n - 1`` (``n`` available modalities) and the kept
    ones are a uniform random subset of that size; a subject with one modality is never
    changed. Dropped channels become zero and ``False`` in the mask, so the mask is never
    empty.

    Args:
        p: Probability of dropping anything.
        seed: Seed of the transform's own generator.

    >>> drop = RandomModalityDropout(p=1.0)
    >>> image, mask = drop(torch.ones(3, 2, 2, 2), torch.tensor([True, True, False]), generator=0)
    >>> mask.tolist(), float(image[~mask].abs().sum())
    ([True, False, False], 0.0)
    """

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        self.p = check_probability("p", p)
        self.random_state = RandomState(seed)

    def sample_params(self, mask: Tensor, generator: torch.Generator) -> DropoutParams:
        """Draw which modalities of an availability ``mask`` (bool (M,)) stay."""
        mask = check_mask(mask).cpu()
        available = torch.nonzero(mask).flatten()
        apply = bool(bernoulli(generator, self.p))
        n = available.numel()
        if not apply or n < 2:
            return DropoutParams(mask.clone())
        n_keep = randint(generator, 1, n - 1)
        order = torch.randperm(n, generator=generator)
        keep = torch.zeros_like(mask)
        keep[available[order[:n_keep]]] = True
        return DropoutParams(keep)

    def apply_batch(
        self, image: Tensor, mask: Tensor, params: Sequence[DropoutParams]
    ) -> tuple[Tensor, Tensor]:
        """Apply to ``image`` (B, M, d, h, w) and ``mask`` (B, M)."""
        keep = torch.stack([p.keep for p in params]).to(mask.device) & mask
        return image * keep[:, :, None, None, None].to(image.dtype), keep

    def __call__(
        self, image: Tensor, mask: Tensor, generator: GeneratorLike = None
    ) -> tuple[Tensor, Tensor]:
        """Drop modalities of ``image`` (M, D, H, W) with availability ``mask`` (M,)."""
        gen = resolve_generator(generator, self.random_state)
        params = self.sample_params(mask, gen)
        out, keep = self.apply_batch(image[None], mask[None], [params])
        return out[0], keep[0]
