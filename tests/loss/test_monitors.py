"""Tests of the collapse monitors."""

from __future__ import annotations

import math

import pytest
import torch
from lightly.utils.debug import std_of_l2_normalized

from lightly_topo.loss import LossInputError
from lightly_topo.loss.monitors import effective_rank, embedding_std, matched_fraction


def test_embedding_std_matches_lightly_and_detects_collapse() -> None:
    z = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(embedding_std(z), std_of_l2_normalized(z))
    assert float(embedding_std(torch.ones(16, 8))) == 0.0
    tokens = z.reshape(4, 16, 32)
    assert torch.allclose(embedding_std(tokens), std_of_l2_normalized(z))
    maps = tokens.transpose(1, 2).reshape(4, 32, 4, 2, 2)
    assert torch.allclose(embedding_std(maps), std_of_l2_normalized(z))


def test_effective_rank() -> None:
    gen = torch.Generator().manual_seed(0)
    low = torch.randn(200, 3, generator=gen) @ torch.randn(3, 64, generator=gen)
    assert 1.5 < float(effective_rank(low)) <= 3.0 + 1e-3
    assert math.isclose(float(effective_rank(torch.ones(50, 10))), 1.0, rel_tol=1e-3)
    orthonormal = torch.eye(16)
    assert math.isclose(float(effective_rank(orthonormal)), 16.0, rel_tol=1e-3)


def test_matched_fraction() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 30, 8, generator=gen)
    assert float(matched_fraction(x, x)) == 1.0
    perm = torch.randperm(30, generator=gen)
    assert float(matched_fraction(x, x[:, perm])) == 1.0
    frac = float(matched_fraction(x, torch.randn(2, 30, 8, generator=gen)))
    assert 0.0 < frac < 1.0
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[:, :10] = True
    assert float(matched_fraction(x, x, mask)) == 1.0


def test_monitor_bad_input() -> None:
    with pytest.raises(LossInputError):
        embedding_std(torch.randn(1, 8))
    with pytest.raises(LossInputError):
        effective_rank(torch.randn(8))
    with pytest.raises(LossInputError, match="same shape"):
        matched_fraction(torch.randn(2, 5, 3), torch.randn(2, 6, 3))
