"""The transforms' own generators."""

from __future__ import annotations

import pickle

import pytest
import torch

from lightly_topo.transforms.random import RandomState, resolve_generator


def test_resolve_generator() -> None:
    state = RandomState(seed=4)
    assert resolve_generator(None, state) is state.generator()
    g = torch.Generator()
    assert resolve_generator(g, state) is g
    a = torch.rand(3, generator=resolve_generator(9, state))
    b = torch.rand(3, generator=resolve_generator(9, state))
    assert torch.equal(a, b)
    with pytest.raises(TypeError, match="generator"):
        resolve_generator("seed", state)  # type: ignore[arg-type]


def test_state_is_seeded_and_pickles_without_generator() -> None:
    first = torch.rand(2, generator=RandomState(seed=1).generator())
    again = torch.rand(2, generator=RandomState(seed=1).generator())
    assert torch.equal(first, again)
    copy = pickle.loads(pickle.dumps(RandomState(seed=1)))
    assert copy.seed == 1 and torch.equal(torch.rand(2, generator=copy.generator()), first)
