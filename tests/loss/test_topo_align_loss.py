"""Tests of TopoAlignLoss: weighting, multi-modality inputs, stats, bad input."""

from __future__ import annotations

import doctest

import pytest
import torch
from lightly.loss import NTXentLoss

import lightly_topo.loss as loss_pkg
from lightly_topo.loss import (
    CrossModalTripletLoss,
    LossInputError,
    PseudoCorrespondenceLoss,
    TopoAlignLoss,
    _grams,
    cross_modal_triplet_loss,
    monitors,
    pseudo_correspondence_loss,
    topo_align_loss,
)


def _stack(seed: int, b: int = 3, m: int = 3, n: int = 16, c: int = 6) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, m, n, c, generator=gen, dtype=torch.float64)


def test_weighted_sum_of_the_two_terms() -> None:
    x = _stack(0)
    a, b = x[:, 0], x[:, 1]
    ids = ["p", "q", "r"]
    topo = TopoAlignLoss(intra_weight=2.0, inter_weight=3.0, max_pairs=None, negatives="all")
    intra = CrossModalTripletLoss(negatives="all")(a, b)
    inter = PseudoCorrespondenceLoss(max_pairs=None, negatives="all")(a, b, subject_ids=ids)
    loss = topo(a, b, subject_ids=ids)
    assert torch.allclose(loss, 2.0 * intra + 3.0 * inter, rtol=1e-10)
    stats = topo.last_stats
    assert torch.allclose(stats["intra"], intra) and torch.allclose(stats["inter"], inter)
    assert set(stats) >= {
        "loss",
        "matched_fraction",
        "n_anchors_intra",
        "n_anchors_inter",
        "n_pairs",
    }
    assert 0.0 < float(stats["matched_fraction"]) <= 1.0


def test_defaults_follow_the_recipe() -> None:
    topo = TopoAlignLoss()
    assert (topo.intra_weight, topo.inter_weight) == (10.0, 10.0)
    assert (topo.intra.k, topo.intra.margin, topo.intra.negatives) == (5, 0.05, 5)
    assert (topo.inter.k, topo.inter.margin, topo.inter.max_pairs, topo.inter.negatives) == (
        5,
        0.4,
        6,
        5,
    )


def test_stack_of_two_equals_pair_and_dict_equals_stack() -> None:
    x = _stack(1, m=2)
    kwargs = {"max_pairs": None, "negatives": "all"}
    pair = TopoAlignLoss(**kwargs)(x[:, 0], x[:, 1])
    assert torch.allclose(TopoAlignLoss(**kwargs)(x), pair, rtol=1e-10)
    y = _stack(2, m=3)
    stacked = TopoAlignLoss(**kwargs)(y, modality_mask=torch.ones(3, 3, dtype=torch.bool))
    as_dict = TopoAlignLoss(**kwargs)({"t1": y[:, 0], "t2": y[:, 1], "flair": y[:, 2]})
    assert torch.allclose(stacked, as_dict, rtol=1e-10)
    maps = y.transpose(2, 3).reshape(3, 3, 6, 4, 2, 2)
    assert torch.allclose(TopoAlignLoss(**kwargs)(maps), stacked, rtol=1e-10)


def test_all_modality_pairs_intra_is_mean_over_subject_pairs() -> None:
    y = _stack(3, m=3)
    avail = torch.tensor([[True, True, True], [True, False, True], [True, True, True]])
    topo = TopoAlignLoss(inter_weight=0.0, intra_weight=1.0, negatives="all")
    loss = topo(y, modality_mask=avail)
    intra = CrossModalTripletLoss(negatives="all")
    terms = []
    for s in range(3):
        for m1, m2 in ((0, 1), (0, 2), (1, 2)):
            if avail[s, m1] and avail[s, m2]:
                terms.append(intra(y[s : s + 1, m1], y[s : s + 1, m2]))
    assert torch.allclose(loss, torch.stack(terms).mean(), rtol=1e-10)


@pytest.mark.parametrize("modality_pairs", ["all", "random"])
def test_unavailable_modality_is_never_read(modality_pairs: str) -> None:
    avail = torch.ones(3, 4, dtype=torch.bool)
    avail[1, 2] = False
    avail[2, [0, 3]] = False
    y = _stack(4, m=4).masked_fill(~avail[..., None, None], float("nan")).requires_grad_(True)
    topo = TopoAlignLoss(modality_pairs=modality_pairs, seed=0, max_pairs=None)
    loss = topo(y, subject_ids=[0, 1, 2], modality_mask=avail)
    loss.backward()
    assert y.grad is not None and bool(torch.isfinite(y.grad).all())
    assert float(y.grad[~avail].abs().sum()) == 0.0
    assert float(y.grad[avail].abs().sum()) > 0.0


def test_random_modality_pairs_reproducible() -> None:
    y = _stack(5, m=4)
    first = TopoAlignLoss(modality_pairs="random", seed=3)(y)
    assert torch.equal(first, TopoAlignLoss(modality_pairs="random", seed=3)(y))


def test_adds_to_ntxent_and_trains_under_bf16_autocast() -> None:
    gen = torch.Generator().manual_seed(0)
    encoder = torch.nn.Conv3d(1, 16, 1)
    vol_a = torch.randn(2, 1, 4, 4, 4, generator=gen)
    vol_b = torch.randn(2, 1, 4, 4, 4, generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dense_a, dense_b = encoder(vol_a), encoder(vol_b)
        z0, z1 = dense_a.mean((2, 3, 4)), dense_b.mean((2, 3, 4))
        loss = NTXentLoss()(z0, z1) + TopoAlignLoss(seed=0)(dense_a, dense_b)
    loss.backward()
    assert encoder.weight.grad is not None and bool(torch.isfinite(encoder.weight.grad).all())


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((torch.randn(2, 10, 4),), {}, "stack"),
        ((torch.randn(2, 1, 10, 4),), {}, "M >= 2"),
        (
            (torch.randn(2, 3, 10, 4),),
            {"modality_mask": torch.ones(2, 2, dtype=torch.bool)},
            "modality_mask",
        ),
        ((torch.randn(2, 3, 10, 4),), {"modality_mask": torch.ones(2, 3)}, "bool"),
        (({"t1": torch.randn(2, 10, 4)},), {}, "at least 2"),
        (({"t1": torch.randn(2, 10, 4), "t2": torch.randn(2, 9, 4)},), {}, "same shape"),
        ((torch.randn(2, 3, 10, 4).fill_(float("inf")),), {}, "NaN or Inf"),
        ((torch.randn(2, 10, 4), torch.randn(2, 10, 4)), {"subject_ids": [1, 2, 3]}, "B = 2"),
        (
            (torch.randn(2, 10, 4), torch.randn(2, 10, 4)),
            {"modality_mask": torch.ones(2, 3, dtype=torch.bool)},
            r"modality_mask must be a bool tensor \(B, M\) = \(2, 2\)",
        ),
        (
            (
                torch.randn(3, 10, 4),
                torch.randn(3, 10, 4) * torch.tensor([1.0, 0.0, 1.0])[:, None, None],
            ),
            {},
            r"feats_b is all zeros for sample\(s\) \[1\]",
        ),
    ],
)
def test_bad_input(args: tuple[object, ...], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(LossInputError, match=match):
        TopoAlignLoss()(*args, **kwargs)  # type: ignore[arg-type]


def test_two_argument_form_leaves_out_subjects_without_both_modalities() -> None:
    torch.manual_seed(0)
    stack = torch.randn(4, 2, 8, 4, 4, 4)
    stack[1, 1] = 0  # subject 1 lacks the second modality
    available = torch.tensor([[True, True], [True, False], [True, True], [True, True]])
    ids = [0, 1, 2, 3]
    loss = TopoAlignLoss(negatives="all")
    pair = loss(stack[:, 0], stack[:, 1], subject_ids=ids, modality_mask=available)
    assert torch.allclose(pair, loss(stack, subject_ids=ids, modality_mask=available))
    kept = [0, 2, 3]
    assert torch.allclose(pair, loss(stack[kept, 0], stack[kept, 1], subject_ids=kept))


def test_bad_modality_pairs_option() -> None:
    with pytest.raises(LossInputError, match="modality_pairs"):
        TopoAlignLoss(modality_pairs="some")


@pytest.mark.parametrize(
    "module",
    [loss_pkg, cross_modal_triplet_loss, pseudo_correspondence_loss, topo_align_loss, monitors],
)
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0


def test_inter_pairs_stay_cross_modal() -> None:
    y = _stack(6, b=2, m=4)
    topo = TopoAlignLoss(modality_pairs="random", max_pairs=None, seed=0)
    # subject 0 has (t1, t2), subject 1 has (t2, flair): t2 of 0 would meet t2 of 1
    shared = torch.tensor([[True, True, False, False], [False, True, True, False]])
    topo(y, modality_mask=shared)
    assert int(topo.last_stats["n_pairs"]) == 0
    disjoint = torch.tensor([[True, True, False, False], [False, False, True, True]])
    topo(y, modality_mask=disjoint)
    assert int(topo.last_stats["n_pairs"]) == 4
    assert float(topo.last_stats["inter"]) > 0.0


@pytest.mark.parametrize("negatives", ["all", 3])
def test_whole_and_chunked_searches_give_the_same_loss(negatives: int | str) -> None:
    x = _stack(7, b=3, m=2, n=30)
    a = x[:, 0].clone().requires_grad_(True)
    b = x[:, 1].clone().requires_grad_(True)
    results = []
    old = _grams.GRAM_BYTES
    for budget in (old, 0):  # whole Gram matrices, then searches in chunks
        _grams.GRAM_BYTES = budget
        try:
            topo = TopoAlignLoss(k=3, max_pairs=None, negatives=negatives, seed=4)
            loss = topo(a, b, subject_ids=[0, 1, 2])
            grads = torch.autograd.grad(loss, (a, b))
        finally:
            _grams.GRAM_BYTES = old
        results.append((loss.detach(), *grads))
    for u, v in zip(*results):
        assert torch.allclose(u, v, rtol=1e-10, atol=1e-12)
    assert float(results[0][1].abs().sum()) > 0


@pytest.mark.parametrize("modality_pairs", ["all", "random"])
@pytest.mark.parametrize("negatives", ["all", 3])
@pytest.mark.parametrize("whole", [True, False])
def test_stack_searches_each_modality_once_with_the_same_loss(
    modality_pairs: str, negatives: int | str, whole: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with all pairs, a modality used by several pairs is stored and searched once (an
    # alias per pair); the loss and its gradient equal those of the pairs' token sets
    # searched one by one. Random pairs use every set once and store them as they are.
    if not whole:
        monkeypatch.setattr(_grams, "GRAM_BYTES", 0)
    x = _stack(8, b=3, m=4, n=20).requires_grad_(True)
    modality_mask = torch.tensor([[True] * 4, [True, False, True, True], [True] * 4])
    ids = ["p", "q", "r"]
    seen: list[int] = []
    original = _grams.TokenGrams.__init__

    def spy(self: _grams.TokenGrams, tokens: torch.Tensor, *args: object, **kwargs: object) -> None:
        seen.append(tokens.shape[0])
        original(self, tokens, *args, **kwargs)  # type: ignore[arg-type]

    topo = TopoAlignLoss(k=3, negatives=negatives, modality_pairs=modality_pairs, seed=5)
    _grams.TokenGrams.__init__ = spy  # type: ignore[method-assign]
    try:
        loss = topo(x, subject_ids=ids, modality_mask=modality_mask)
    finally:
        _grams.TokenGrams.__init__ = original  # type: ignore[method-assign]
    # all: the 12 modality maps, not 2 x 6 pairs x 3 samples; random: 2 x 3 samples
    assert seen == ([3 * 4] if modality_pairs == "all" else [2 * 3])
    (grad,) = torch.autograd.grad(loss, x)

    reference = TopoAlignLoss(k=3, negatives=negatives, modality_pairs=modality_pairs, seed=5)
    plain = topo_align_loss.TopoAlignLoss._combine
    captured: dict[str, object] = {}

    def without_alias(self: TopoAlignLoss, *args: object, **kwargs: object) -> torch.Tensor:
        captured["stored"] = args[6] if len(args) > 6 else kwargs.get("stored")
        return plain(self, *args[:6])  # type: ignore[arg-type]

    topo_align_loss.TopoAlignLoss._combine = without_alias  # type: ignore[method-assign]
    try:
        expected = reference(x, subject_ids=ids, modality_mask=modality_mask)
    finally:
        topo_align_loss.TopoAlignLoss._combine = plain  # type: ignore[method-assign]
    assert (captured["stored"] is not None) == (modality_pairs == "all")
    (expected_grad,) = torch.autograd.grad(expected, x)
    assert float(loss.detach()) > 0
    assert torch.allclose(loss, expected, rtol=1e-10, atol=1e-12)
    assert torch.allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)
