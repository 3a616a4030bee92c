"""Tests of CrossModalTripletLoss against a slow loop reference of its definition."""

from __future__ import annotations

import math

import pytest
import torch

from lightly_topo.loss import CrossModalTripletLoss, LossInputError


def _cos_dist(u: torch.Tensor, v: torch.Tensor) -> float:
    return 1.0 - float(u @ v) / (float(u.norm()) * float(v.norm()))


def reference_intra(
    a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, k: int, margin: float
) -> float:
    """Straight from the definition: nested loops over subjects, directions, anchors, pairs."""
    subject_terms = []
    for s in range(a.shape[0]):
        valid = [i for i in range(a.shape[1]) if bool(mask[s, i])]
        if len(valid) < k + 2:
            continue
        subject_total = 0.0
        for x, y in ((a[s], b[s]), (b[s], a[s])):
            anchor_terms = []
            for i in valid:
                by_distance = sorted(
                    (float(((x[i] - x[j]) ** 2).sum()), j) for j in valid if j != i
                )
                neighbours = [j for _, j in by_distance[:k]]
                others = [n for n in valid if n != i and n not in neighbours]
                hinges = []
                for j in neighbours:
                    for n in others:
                        value = _cos_dist(y[i], y[j]) - _cos_dist(y[i], y[n]) + margin
                        hinges.append(max(0.0, value))
                anchor_terms.append(sum(hinges) / len(hinges))
            subject_total += sum(anchor_terms) / len(anchor_terms)
        subject_terms.append(subject_total)
    return sum(subject_terms) / len(subject_terms)


def _tokens(seed: int, b: int = 3, n: int = 14, c: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(b, n, c, generator=gen, dtype=torch.float64)
    return a, a + 0.7 * torch.randn(b, n, c, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1])
def test_all_negatives_equal_reference(seed: int) -> None:
    a, b = _tokens(seed)
    loss = CrossModalTripletLoss(k=3, margin=0.3, negatives="all")(a, b)
    expected = reference_intra(a, b, torch.ones(a.shape[:2], dtype=torch.bool), 3, 0.3)
    assert loss.dtype == torch.float64
    assert math.isclose(float(loss), expected, rel_tol=1e-5)


def test_all_negatives_equal_reference_with_mask() -> None:
    a, b = _tokens(2)
    mask = torch.rand(a.shape[:2], generator=torch.Generator().manual_seed(3)) > 0.3
    mask[2, 6:] = False  # subject 2 keeps 6 tokens: too few for k = 5, skipped
    mask[2, :6] = True
    loss = CrossModalTripletLoss(k=5, margin=0.2, negatives="all")(a, b, mask=mask)
    assert math.isclose(float(loss), reference_intra(a, b, mask, 5, 0.2), rel_tol=1e-5)


def test_maps_are_tokens_with_channels_last() -> None:
    a, b = _tokens(4, n=27)
    maps_a = a.transpose(1, 2).reshape(3, 6, 3, 3, 3)
    maps_b = b.transpose(1, 2).reshape(3, 6, 3, 3, 3)
    loss_fn = CrossModalTripletLoss(k=3, negatives="all")
    assert torch.allclose(loss_fn(maps_a, maps_b), loss_fn(a, b), rtol=1e-12)


def test_invariant_to_token_permutation_and_scale() -> None:
    a, b = _tokens(5)
    loss_fn = CrossModalTripletLoss(k=3, margin=0.1, negatives="all")
    base = loss_fn(a, b)
    perm = torch.randperm(a.shape[1], generator=torch.Generator().manual_seed(0))
    assert torch.allclose(loss_fn(a[:, perm], b[:, perm]), base, rtol=1e-10)
    assert torch.allclose(loss_fn(3.0 * a, 0.25 * b), base, rtol=1e-10)


def test_sampled_negatives_invariant_to_scale() -> None:
    a, b = _tokens(6)
    first = CrossModalTripletLoss(k=3, negatives=3, seed=0)(a, b)
    second = CrossModalTripletLoss(k=3, negatives=3, seed=0)(2.0 * a, 5.0 * b)
    assert torch.allclose(first, second, rtol=1e-10)


def _clustered(seed: int, clusters: int, size: int, c: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.linalg.qr(torch.randn(c, c, generator=gen, dtype=torch.float64))[0][:clusters]
    x = centres.repeat_interleave(size, 0) + 0.01 * torch.randn(
        clusters * size, c, generator=gen, dtype=torch.float64
    )
    return torch.nn.functional.normalize(x, dim=-1)


@pytest.mark.parametrize("negatives", ["all", 4])
def test_zero_when_modalities_identical_and_margin_satisfied(negatives: int | str) -> None:
    # clusters of k + 1 tokens on orthogonal directions: neighbours at cosine distance ~0,
    # non-neighbours at ~1 > margin
    x = torch.stack([_clustered(s, 4, 4) for s in range(2)])
    loss = CrossModalTripletLoss(k=3, margin=0.05, negatives=negatives, seed=0)(x, x.clone())
    assert float(loss) == 0.0


def test_sampled_negatives_reproducible_and_close_to_all() -> None:
    a, b = _tokens(7, b=2, n=40)
    first = CrossModalTripletLoss(k=5, negatives=5, seed=3)(a, b)
    again = CrossModalTripletLoss(k=5, negatives=5, seed=3)(a, b)
    assert torch.equal(first, again)
    many = CrossModalTripletLoss(k=5, negatives=400, seed=3)(a, b)
    exact = CrossModalTripletLoss(k=5, negatives="all")(a, b)
    assert math.isclose(float(many), float(exact), rel_tol=0.05)


def test_max_tokens_reproducible_and_full_when_large() -> None:
    a, b = _tokens(8, b=2, n=30)
    exact = CrossModalTripletLoss(k=3, negatives="all")(a, b)
    assert torch.allclose(CrossModalTripletLoss(k=3, negatives="all", max_tokens=30)(a, b), exact)
    sub = CrossModalTripletLoss(k=3, negatives="all", max_tokens=10, seed=1)
    first = sub(a, b)
    assert torch.equal(
        first, CrossModalTripletLoss(k=3, negatives="all", max_tokens=10, seed=1)(a, b)
    )
    assert sub.last_stats["n_anchors"] == 2 * 2 * 10
    assert not torch.allclose(first, exact)


def test_masked_tokens_change_nothing_when_dropped() -> None:
    a, b = _tokens(9, b=2, n=16)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, [0, 2, 3, 5, 7, 8, 11, 12, 14, 15]] = True
    mask[1, [1, 2, 4, 5, 6, 9, 10, 11, 13, 14]] = True
    loss_fn = CrossModalTripletLoss(k=3, negatives="all")
    masked = loss_fn(a, b, mask=mask)
    kept_a = torch.stack([a[i, mask[i]] for i in range(2)])
    kept_b = torch.stack([b[i, mask[i]] for i in range(2)])
    assert torch.allclose(masked, loss_fn(kept_a, kept_b), rtol=1e-10)
    # the values of masked tokens are never read
    noisy_a, noisy_b = a.clone(), b.clone()
    noisy_a[~mask] = float("nan")
    noisy_b[~mask] = -7.0
    assert torch.allclose(loss_fn(noisy_a, noisy_b, mask=mask), masked, rtol=1e-10)
    # a (B, D, H, W) mask is flattened like the tokens
    maps_a = a.transpose(1, 2).reshape(2, 6, 4, 2, 2)
    maps_b = b.transpose(1, 2).reshape(2, 6, 4, 2, 2)
    assert torch.allclose(loss_fn(maps_a, maps_b, mask=mask.reshape(2, 4, 2, 2)), masked)


def test_gradients_reach_both_modalities_under_bf16_autocast() -> None:
    gen = torch.Generator().manual_seed(0)
    encoder = torch.nn.Linear(16, 32)
    xa = torch.randn(2, 64, 16, generator=gen)
    xb = torch.randn(2, 64, 16, generator=gen)
    fa = xa.clone().requires_grad_(True)
    fb = xb.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        za, zb = encoder(fa), encoder(fb)
        assert za.dtype == torch.bfloat16
        loss = CrossModalTripletLoss(seed=0)(za, zb)
    assert loss.dtype == torch.float32
    loss.backward()
    for grad in (fa.grad, fb.grad, encoder.weight.grad):
        assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_all_tokens_masked_gives_zero_with_gradient() -> None:
    a = torch.randn(2, 10, 4, requires_grad=True)
    b = torch.randn(2, 10, 4, requires_grad=True)
    loss_fn = CrossModalTripletLoss(k=3)
    loss = loss_fn(a, b, mask=torch.zeros(2, 10, dtype=torch.bool))
    loss.backward()
    assert float(loss.detach()) == 0.0 and a.grad is not None and b.grad is not None
    assert int(loss_fn.last_stats["n_subjects"]) == 0


@pytest.mark.parametrize(
    ("feats_a", "feats_b", "mask", "match"),
    [
        (torch.randn(2, 10, 4), torch.randn(2, 10, 5), None, "same shape"),
        (torch.randn(2, 10, 4), torch.randn(3, 10, 4), None, "same shape"),
        (torch.randn(2, 6, 4), torch.randn(2, 6, 4), None, "at least 7"),
        (torch.randn(2, 10), torch.randn(2, 10), None, r"\(B, C, D, H, W\)"),
        (torch.full((2, 10, 4), float("nan")), torch.randn(2, 10, 4), None, "NaN or Inf"),
        (torch.randn(2, 10, 4), torch.full((2, 10, 4), float("inf")), None, "NaN or Inf"),
        (torch.randn(2, 10, 4), torch.randn(2, 10, 4), torch.ones(2, 9, dtype=torch.bool), "mask"),
        (torch.randn(2, 10, 4), torch.randn(2, 10, 4), torch.ones(2, 10), "bool"),
    ],
)
def test_bad_input(
    feats_a: torch.Tensor, feats_b: torch.Tensor, mask: torch.Tensor | None, match: str
) -> None:
    with pytest.raises(LossInputError, match=match):
        CrossModalTripletLoss(k=5)(feats_a, feats_b, mask=mask)


@pytest.mark.parametrize(
    "kwargs",
    [{"k": 0}, {"negatives": "some"}, {"negatives": 0}, {"max_tokens": 0}, {"margin": -1.0}],
)
def test_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(LossInputError):
        CrossModalTripletLoss(**kwargs)  # type: ignore[arg-type]
