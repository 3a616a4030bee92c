"""The fast TACO losses against the plain reference of ``lightly_topo.loss.reference``:
values and gradients, for ``negatives="all"`` and for sampled negatives with one shared draw."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lightly_topo.loss import CrossModalTripletLoss, PseudoCorrespondenceLoss, TopoAlignLoss, _ops
from lightly_topo.loss import reference as ref


def _tokens(seed: int, b: int = 3, n: int = 16, c: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, n, c, generator=g, dtype=torch.float64)
    return a, (0.6 * a + torch.randn(b, n, c, generator=g, dtype=torch.float64))


def _mask(seed: int, b: int = 3, n: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + seed)
    mask = torch.rand(b, n, generator=g) > 0.2
    mask[:, :8] = True
    return mask


def _value_and_grads(fn: Any, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    a = a.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    loss = fn(a, b)
    ga, gb = torch.autograd.grad(loss, (a, b))
    return loss.detach(), ga, gb


def _assert_same(fast: tuple[torch.Tensor, ...], slow: tuple[torch.Tensor, ...]) -> None:
    assert float(slow[0]) > 0
    for got, want in zip(fast, slow, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


class _Recorder:
    """Wraps ``_ops`` functions to keep what the fast path drew."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.samples: list[torch.Tensor] = []
        self.anchors: list[torch.Tensor] = []
        sample, positions = _ops.sample_excluding, _ops.valid_positions

        def record_sample(*args: Any, **kwargs: Any) -> Any:
            out = sample(*args, **kwargs)
            self.samples.append(out[0])
            return out

        def record_positions(*args: Any, **kwargs: Any) -> Any:
            out = positions(*args, **kwargs)
            self.anchors.append(out[0])
            return out

        monkeypatch.setattr(_ops, "sample_excluding", record_sample)
        monkeypatch.setattr(_ops, "valid_positions", record_positions)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("masked", [False, True])
def test_intra_all_negatives_equals_reference(seed: int, masked: bool) -> None:
    a, b = _tokens(seed)
    mask = _mask(seed) if masked else None
    loss = CrossModalTripletLoss(negatives="all")
    fast = _value_and_grads(lambda x, y: loss(x, y, mask=mask), a, b)
    slow = _value_and_grads(lambda x, y: ref.intra_loss(x, y, mask, k=5, margin=0.05), a, b)
    _assert_same(fast, slow)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("s", [5, 3, 8])
def test_intra_sampled_negatives_equal_reference_on_the_same_draw(
    seed: int, s: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = _tokens(seed)
    mask = _mask(seed)
    record = _Recorder(monkeypatch)
    loss = CrossModalTripletLoss(negatives=s, seed=seed)
    fast = _value_and_grads(lambda x, y: loss(x, y, mask=mask), a, b)
    (negs,) = record.samples  # (2B, N, s): direction-major rows, anchors in token order
    batch = a.shape[0]

    def draw(direction: int, subject: int, anchor: int) -> list[int]:
        return negs[direction * batch + subject, anchor].tolist()

    slow = _value_and_grads(
        lambda x, y: ref.intra_loss(x, y, mask, k=5, margin=0.05, draw=draw), a, b
    )
    _assert_same(fast, slow)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("masked", [False, True])
def test_inter_all_negatives_equals_reference(seed: int, masked: bool) -> None:
    a, b = _tokens(seed, b=4)
    mask = _mask(seed, b=4) if masked else None
    ids = ["s0", "s1", "s0", "s2"]
    loss = PseudoCorrespondenceLoss(negatives="all", max_pairs=None)
    fast = _value_and_grads(lambda x, y: loss(x, y, subject_ids=ids, mask=mask), a, b)
    slow = _value_and_grads(lambda x, y: ref.inter_loss(x, y, ids, mask, k=5, margin=0.4), a, b)
    _assert_same(fast, slow)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("s", [5, 2])
def test_inter_sampled_negatives_equal_reference_on_the_same_draw(
    seed: int, s: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = _tokens(seed, b=3)
    mask = _mask(seed, b=3)
    record = _Recorder(monkeypatch)
    k = 5
    loss = PseudoCorrespondenceLoss(negatives=s, max_pairs=None, seed=seed)
    fast = _value_and_grads(lambda x, y: loss(x, y, mask=mask), a, b)
    (negs,) = record.samples  # one draw: every partner side has unmatched tokens here
    (anchors,) = record.anchors  # (2P, A): matched tokens of each row, increasing
    rows, width = anchors.shape
    negs = negs.view(rows, width, k, s)
    pairs = rows // 2

    def draw(direction: int, pair: int, anchor: int, rank: int) -> list[int]:
        row = direction * pairs + pair
        column = anchors[row].tolist().index(anchor)
        return negs[row, column, rank].tolist()

    slow = _value_and_grads(
        lambda x, y: ref.inter_loss(x, y, None, mask, k=k, margin=0.4, draw=draw), a, b
    )
    _assert_same(fast, slow)


def test_topo_align_loss_is_the_weighted_sum_of_the_references() -> None:
    a, b = _tokens(3, b=4)
    ids = [0, 1, 2, 3]
    loss = TopoAlignLoss(negatives="all", max_pairs=None)
    fast = _value_and_grads(lambda x, y: loss(x, y, subject_ids=ids), a, b)

    def combined(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        intra = ref.intra_loss(x, y, k=5, margin=0.05)
        return 10.0 * intra + 10.0 * ref.inter_loss(x, y, ids, k=5, margin=0.4)

    _assert_same(fast, _value_and_grads(combined, a, b))


def test_reference_refuses_a_draw_outside_its_set() -> None:
    a, b = _tokens(0, b=1)
    with pytest.raises(ValueError, match=r"not all in M\(i\)"):
        ref.intra_loss(a, b, draw=lambda d, s, i: [i])  # the anchor is never a negative


def test_a_wrong_formula_is_caught() -> None:
    """The comparison can fail: a margin off by 0.01 changes the value."""
    a, b = _tokens(1)
    fast = CrossModalTripletLoss(negatives="all")(a, b)
    assert abs(float(fast) - float(ref.intra_loss(a, b, k=5, margin=0.06))) > 1e-4
