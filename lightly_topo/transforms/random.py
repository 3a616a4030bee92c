"""Random number handling shared by all transforms: no transform touches the global RNG.

Every random transform accepts ``generator`` (a :class:`torch.Generator`, an ``int`` seed or
``None``) in its calls and a ``seed`` at construction. With ``generator=None`` the transform
draws from its own :class:`RandomState`, a CPU generator that is re-seeded once per process
and per DataLoader worker (and epoch) so that workers never repeat each other's draws.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

#: What a random transform accepts as its source of randomness.
GeneratorLike = torch.Generator | int | None

_MASK63 = (1 << 63) - 1


def _mix(a: int, b: int) -> int:
    """A deterministic 63-bit mix of two integers (splitmix64 finaliser)."""
    z = (a * 0x9E3779B97F4A7C15 + b) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK63


class RandomState:
    """A lazily created, per-process CPU :class:`torch.Generator`.

    In the main process the generator is seeded with ``seed`` (or, where ``seed`` is
    ``None``, with :func:`torch.initial_seed`, which is read but never changed). In a
    DataLoader worker it is seeded with a mix of ``seed`` and the worker's seed, which
    PyTorch derives per worker and per epoch from the main process's RNG: augmentations
    differ across workers and epochs and are reproducible under a fixed global seed.
    The generator is not pickled; a copy re-creates it.

    Args:
        seed: Base seed, or ``None``.

    >>> state = RandomState(seed=0)
    >>> isinstance(state.generator(), torch.Generator)
    True
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._key: tuple[int, int | None] | None = None

    def generator(self) -> torch.Generator:
        """The generator of the current process (or worker)."""
        info = get_worker_info()
        key = (os.getpid(), None if info is None else int(info.seed))
        if self._generator is None or key != self._key:
            if info is None:
                base = self.seed if self.seed is not None else torch.initial_seed()
                seed = base & _MASK63
            else:
                seed = _mix(self.seed if self.seed is not None else 0, int(info.seed))
            self._generator = torch.Generator().manual_seed(seed)
            self._key = key
        return self._generator

    def __getstate__(self) -> dict[str, Any]:
        return {"seed": self.seed, "_generator": None, "_key": None}


def resolve_generator(generator: GeneratorLike, state: RandomState) -> torch.Generator:
    """A generator from a call's ``generator`` argument, falling back to ``state``."""
    if generator is None:
        return state.generator()
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator & _MASK63)
    raise TypeError(
        f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}"
    )


def as_generator(generator: GeneratorLike) -> torch.Generator | None:
    """``generator`` as a :class:`torch.Generator` (an int seeds a new one), or ``None``."""
    if generator is None:
        return None
    return resolve_generator(generator, RandomState())


def uniform(
    generator: torch.Generator, low: float, high: float, size: tuple[int, ...] = ()
) -> Tensor:
    """float64 samples of U(low, high) on the CPU."""
    return low + (high - low) * torch.rand(size, generator=generator, dtype=torch.float64)


def bernoulli(generator: torch.Generator, p: float, size: tuple[int, ...] = ()) -> Tensor:
    """bool samples that are ``True`` with probability ``p``."""
    return torch.rand(size, generator=generator, dtype=torch.float64) < p


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """An int drawn uniformly from ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def check_probability(name: str, p: float) -> float:
    """``p`` as a float in ``[0, 1]``, or a ValueError naming the argument."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return float(p)
