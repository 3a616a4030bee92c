"""Tests of PseudoCorrespondenceLoss against a slow loop reference of its definition."""

from __future__ import annotations

import math

import pytest
import torch

from lightly_topo.loss import LossInputError, PseudoCorrespondenceLoss, _ops


def _cos_dist(u: torch.Tensor, v: torch.Tensor) -> float:
    return 1.0 - float(u @ v) / (float(u.norm()) * float(v.norm()))


def _pair_term(
    ta: torch.Tensor,
    tb: torch.Tensor,
    valid_a: list[int],
    valid_b: list[int],
    k: int,
    margin: float,
) -> float | None:
    """The term of one pair (A = ta, B = tb), or None when it has no valid anchor."""
    nearest_b = {i: min(valid_b, key=lambda u: _cos_dist(ta[i], tb[u])) for i in valid_a}
    nearest_a = {u: min(valid_a, key=lambda i: _cos_dist(ta[i], tb[u])) for u in valid_b}
    partner = {i: u for i, u in nearest_b.items() if nearest_a[u] == i}
    matched_b = set(partner.values())
    unmatched_b = [u for u in valid_b if u not in matched_b]
    anchor_terms = []
    for i, u in partner.items():
        others = sorted((_cos_dist(ta[i], ta[j]), j) for j in valid_a if j != i)
        neighbours = [j for _, j in others[:k]]
        positives = [partner[j] for j in neighbours if j in partner]
        if not positives:
            continue
        if unmatched_b:
            negatives = unmatched_b
        else:
            negatives = [v for v in valid_b if v != u and v not in positives]
        if not negatives:
            continue
        hinges = [
            max(0.0, _cos_dist(tb[u], tb[pos]) - _cos_dist(tb[u], tb[neg]) + margin)
            for pos in positives
            for neg in negatives
        ]
        anchor_terms.append(sum(hinges) / len(hinges))
    if not anchor_terms:
        return None
    return sum(anchor_terms) / len(anchor_terms)


def reference_inter(
    a: torch.Tensor,
    b: torch.Tensor,
    subject_ids: list[object],
    mask: torch.Tensor,
    k: int,
    margin: float,
) -> float:
    """Straight from the definition, every ordered pair of different subjects, both directions."""
    total = 0.0
    for direction in range(2):
        terms = []
        for p in range(a.shape[0]):
            for q in range(a.shape[0]):
                if subject_ids[p] == subject_ids[q]:
                    continue
                valid_p = [i for i in range(a.shape[1]) if bool(mask[p, i])]
                valid_q = [i for i in range(a.shape[1]) if bool(mask[q, i])]
                ta, tb = (a[p], b[q]) if direction == 0 else (b[p], a[q])
                term = _pair_term(ta, tb, valid_p, valid_q, k, margin)
                if term is not None:
                    terms.append(term)
        total += sum(terms) / len(terms) if terms else 0.0
    return total


def _tokens(seed: int, b: int = 3, n: int = 16, c: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(b, n, c, generator=gen, dtype=torch.float64)
    return a, a + 0.5 * torch.randn(b, n, c, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1])
def test_all_negatives_equal_reference(seed: int) -> None:
    a, b = _tokens(seed)
    ids = ["s0", "s1", "s2"]
    loss_fn = PseudoCorrespondenceLoss(k=3, margin=0.4, max_pairs=None, negatives="all")
    loss = loss_fn(a, b, subject_ids=ids)
    mask = torch.ones(a.shape[:2], dtype=torch.bool)
    assert loss.dtype == torch.float64
    assert math.isclose(float(loss), reference_inter(a, b, ids, mask, 3, 0.4), rel_tol=1e-5)
    assert int(loss_fn.last_stats["n_pairs"]) > 0


def test_all_negatives_equal_reference_with_mask_and_repeated_subject() -> None:
    a, b = _tokens(2, b=4)
    ids = [7, 3, 7, 5]  # samples 0 and 2 are the same subject: never paired
    mask = torch.rand(a.shape[:2], generator=torch.Generator().manual_seed(1)) > 0.25
    loss = PseudoCorrespondenceLoss(k=3, margin=0.3, max_pairs=None, negatives="all")(
        a, b, subject_ids=torch.tensor(ids), mask=mask
    )
    assert math.isclose(float(loss), reference_inter(a, b, ids, mask, 3, 0.3), rel_tol=1e-5)


def test_sample_with_fewer_valid_tokens_than_k_equals_reference() -> None:
    a, b = _tokens(10, b=3, n=12)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 4:] = False  # 4 valid tokens: anchors of sample 1 have 3 < k neighbours
    loss = PseudoCorrespondenceLoss(k=5, max_pairs=None, negatives="all")(a, b, mask=mask)
    expected = reference_inter(a, b, [0, 1, 2], mask, 5, 0.4)
    assert math.isclose(float(loss), expected, rel_tol=1e-5)


def test_fallback_negatives_when_every_token_is_matched() -> None:
    # b of subject 1 is a token permutation of a of subject 0 (and vice versa): every token
    # of B is matched, so the negatives are the tokens other than the partner and positives
    a, _ = _tokens(3, b=2, n=12)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    b = torch.stack([a[1][perm], a[0][perm]])
    ids = [0, 1]
    loss_fn = PseudoCorrespondenceLoss(k=3, margin=0.4, max_pairs=None, negatives="all")
    loss = loss_fn(a, b, subject_ids=ids)
    assert float(loss_fn.last_stats["matched_fraction"]) == 1.0
    mask = torch.ones(2, 12, dtype=torch.bool)
    assert math.isclose(float(loss), reference_inter(a, b, ids, mask, 3, 0.4), rel_tol=1e-5)
    sampled = PseudoCorrespondenceLoss(k=3, margin=0.4, max_pairs=None, negatives=2000, seed=0)
    assert math.isclose(float(sampled(a, b, subject_ids=ids)), float(loss), rel_tol=0.05)


def test_sampled_negatives_reproducible_and_close_to_all() -> None:
    a, b = _tokens(4, b=3, n=40)
    make = lambda s: PseudoCorrespondenceLoss(k=5, max_pairs=None, negatives=s, seed=2)  # noqa: E731
    first = make(5)(a, b)
    assert torch.equal(first, make(5)(a, b))
    exact = make("all")(a, b)
    assert math.isclose(float(make(600)(a, b)), float(exact), rel_tol=0.05)


def test_max_pairs_subset_is_reproducible_and_bounded() -> None:
    a, b = _tokens(5, b=4)
    loss_fn = PseudoCorrespondenceLoss(k=3, max_pairs=3, negatives="all", seed=11)
    first = loss_fn(a, b)
    assert int(loss_fn.last_stats["n_pairs"]) <= 2 * 3
    again = PseudoCorrespondenceLoss(k=3, max_pairs=3, negatives="all", seed=11)(a, b)
    assert torch.equal(first, again)


def test_max_tokens_limits_anchors() -> None:
    a, b = _tokens(6, b=2, n=60)
    full = PseudoCorrespondenceLoss(k=3, max_pairs=None, negatives="all")
    full(a, b)
    sub = PseudoCorrespondenceLoss(k=3, max_pairs=None, negatives="all", max_tokens=44, seed=0)
    loss = sub(a, b)
    assert bool(torch.isfinite(loss))
    # 44 rows per pair direction = 4 candidates (2k + 5 = 11 rows each); 2 pairs x 2 ways
    assert 0 < int(sub.last_stats["n_anchors"]) <= 4 * 4
    assert int(sub.last_stats["n_anchors"]) < int(full.last_stats["n_anchors"])


def test_invariant_to_scale_and_shared_token_permutation() -> None:
    a, b = _tokens(7)
    loss_fn = PseudoCorrespondenceLoss(k=3, max_pairs=None, negatives="all")
    base = loss_fn(a, b)
    perm = torch.randperm(a.shape[1], generator=torch.Generator().manual_seed(1))
    assert torch.allclose(loss_fn(2.0 * a[:, perm], 0.3 * b[:, perm]), base, rtol=1e-10)


def test_masked_tokens_change_nothing_when_dropped() -> None:
    a, b = _tokens(8, b=3, n=14)
    mask = torch.zeros(3, 14, dtype=torch.bool)
    for i in range(3):
        mask[i, torch.randperm(14, generator=torch.Generator().manual_seed(i))[:10]] = True
    loss_fn = PseudoCorrespondenceLoss(k=3, max_pairs=None, negatives="all")
    masked = loss_fn(a, b, mask=mask)
    kept_a = torch.stack([a[i, mask[i]] for i in range(3)])
    kept_b = torch.stack([b[i, mask[i]] for i in range(3)])
    assert torch.allclose(masked, loss_fn(kept_a, kept_b), rtol=1e-10)
    noisy_a = a.masked_fill(~mask.unsqueeze(-1), float("nan")).requires_grad_(True)
    noisy = loss_fn(noisy_a, b, mask=mask)
    assert torch.allclose(noisy, masked, rtol=1e-10)
    noisy.backward()
    assert noisy_a.grad is not None and bool(torch.isfinite(noisy_a.grad).all())
    assert float(noisy_a.grad[~mask].abs().sum()) == 0.0


@pytest.mark.parametrize("ids", [None, ["x"]])
def test_one_subject_gives_zero_without_nan(ids: list[str] | None) -> None:
    a = torch.randn(1, 20, 8, requires_grad=True)
    b = torch.randn(1, 20, 8, requires_grad=True)
    loss = PseudoCorrespondenceLoss()(a, b, subject_ids=ids)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert a.grad is not None and bool(torch.isfinite(a.grad).all())


def test_same_subject_twice_gives_zero() -> None:
    a, b = _tokens(9, b=2)
    loss_fn = PseudoCorrespondenceLoss(max_pairs=None)
    assert float(loss_fn(a, b, subject_ids=["s", "s"])) == 0.0
    assert int(loss_fn.last_stats["n_pairs"]) == 0


def test_all_tokens_masked_gives_zero_with_gradient() -> None:
    a = torch.randn(3, 12, 4, requires_grad=True)
    b = torch.randn(3, 12, 4, requires_grad=True)
    loss = PseudoCorrespondenceLoss(k=3)(a, b, mask=torch.zeros(3, 12, dtype=torch.bool))
    loss.backward()
    assert float(loss.detach()) == 0.0 and b.grad is not None


def test_gradients_reach_both_modalities_under_bf16_autocast() -> None:
    gen = torch.Generator().manual_seed(0)
    encoder = torch.nn.Linear(16, 32)
    fa = torch.randn(3, 64, 16, generator=gen).requires_grad_(True)
    fb = torch.randn(3, 64, 16, generator=gen).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = PseudoCorrespondenceLoss(seed=0)(encoder(fa), encoder(fb))
    loss.backward()
    for grad in (fa.grad, fb.grad):
        assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("feats_a", "feats_b", "ids", "match"),
    [
        (torch.randn(2, 10, 4), torch.randn(2, 11, 4), None, "same shape"),
        (torch.randn(2, 5, 4), torch.randn(2, 5, 4), None, "at least 7"),
        (torch.randn(2, 10, 4), torch.randn(2, 10, 4), ["a"], "B = 2"),
        (torch.randn(2, 10, 4), torch.randn(2, 10, 4), torch.zeros(3), "B = 2"),
        (torch.randn(2, 10, 4), torch.randn(2, 10, 4), torch.zeros(2, 1), "1-D"),
        (torch.randn(2, 10, 4), torch.randn(2, 10, 4), "ab", "list of str/int"),
        (torch.randn(2, 10, 4).fill_(float("nan")), torch.randn(2, 10, 4), None, "NaN"),
    ],
)
def test_bad_input(feats_a: torch.Tensor, feats_b: torch.Tensor, ids: object, match: str) -> None:
    with pytest.raises(LossInputError, match=match):
        PseudoCorrespondenceLoss(k=5)(feats_a, feats_b, subject_ids=ids)  # type: ignore[arg-type]


def test_bad_max_pairs() -> None:
    with pytest.raises(LossInputError, match="max_pairs"):
        PseudoCorrespondenceLoss(max_pairs=0)


def test_full_width_anchors_give_the_same_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    # a GPU keeps every token as a (masked) anchor slot instead of reading the matched count
    gen = torch.Generator().manual_seed(11)
    a = torch.randn(4, 30, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 30, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    results = []
    for full in (False, True):
        monkeypatch.setattr(_ops, "FULL_WIDTH_POSITIONS", full)
        loss_fn = PseudoCorrespondenceLoss(k=3, max_pairs=None, negatives="all")
        loss = loss_fn(a, b, subject_ids=[0, 1, 2, 3])
        results.append((loss.detach(), *torch.autograd.grad(loss, (a, b))))
    assert float(results[0][0]) > 0
    for u, v in zip(*results):
        assert torch.allclose(u, v, rtol=1e-12, atol=1e-14)
