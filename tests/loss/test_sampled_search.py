"""``max_tokens < N`` in the inter-instance term: exact matches on sampled tokens, a row budget,
the same value as the plain reference on the same draw, masks, reproducibility."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lightly_topo.loss import PseudoCorrespondenceLoss, TopoAlignLoss, _ops, _sampled_matches
from lightly_topo.loss import reference as ref


def _tokens(seed: int, b: int = 3, n: int = 40, c: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, n, c, generator=g, dtype=torch.float64)
    return a, (0.6 * a + torch.randn(b, n, c, generator=g, dtype=torch.float64))


def _mask(seed: int, b: int = 3, n: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + seed)
    mask = torch.rand(b, n, generator=g) > 0.25
    mask[:, :10] = True
    return mask


@pytest.mark.parametrize(
    ("max_tokens", "k", "expected"), [(512, 5, 34), (15, 5, 1), (14, 5, 1), (110, 3, 10)]
)
def test_candidates_fit_the_row_budget(max_tokens: int, k: int, expected: int) -> None:
    assert _sampled_matches.candidates(max_tokens, k) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_matches_equal_the_full_mutual_nearest_neighbours(seed: int) -> None:
    a, b = _tokens(seed, b=2, n=50)
    mask = _mask(seed, b=2, n=50)
    mask_b = mask.flip(0)
    units = torch.nn.functional.normalize(torch.cat([a, b]), dim=-1)
    nn_ab, _, matched_a, _ = _ops.mutual_nearest_neighbours(a, b, mask, mask_b)
    tokens = torch.arange(50).expand(2, 50)
    partner, matched = _sampled_matches.matches(
        units, torch.tensor([0, 1]), torch.tensor([2, 3]), mask, mask_b, tokens, mask
    )
    assert torch.equal(matched, matched_a)
    assert torch.equal(partner[mask], nn_ab[mask])


def test_draw_from_takes_only_valid_entries() -> None:
    tokens = torch.tensor([[7, 8, 9, 10]])
    valid = torch.tensor([[[False, True, False, True], [True, False, False, False]]])
    drawn = _sampled_matches.draw_from(tokens, valid, 200, torch.Generator().manual_seed(0))
    assert set(drawn[0, 0].tolist()) == {8, 10}
    assert set(drawn[0, 1].tolist()) == {7}


class _Recorder:
    """Keeps the candidates, pools and negatives that the fast path drew."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.positions: list[torch.Tensor] = []
        self.negatives: list[torch.Tensor] = []
        positions, draw = _ops.sample_positions, _sampled_matches.draw_from

        def record_positions(*args: Any, **kwargs: Any) -> Any:
            out = positions(*args, **kwargs)
            self.positions.append(out[0])
            return out

        def record_draw(*args: Any, **kwargs: Any) -> Any:
            out = draw(*args, **kwargs)
            self.negatives.append(out)
            return out

        monkeypatch.setattr(_ops, "sample_positions", record_positions)
        monkeypatch.setattr(_sampled_matches, "draw_from", record_draw)


def _grads(fn: Any, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    a = a.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    loss = fn(a, b)
    return (loss.detach(), *torch.autograd.grad(loss, (a, b)))


@pytest.mark.parametrize(("seed", "negatives"), [(0, "all"), (1, 3)])
@pytest.mark.parametrize("masked", [False, True])
def test_sampled_search_equals_the_reference_on_the_same_draw(
    seed: int, negatives: Any, masked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = _tokens(seed, n=80)
    mask = _mask(seed, n=80) if masked else None
    valid = torch.ones(3, 80, dtype=torch.bool) if mask is None else mask
    record = _Recorder(monkeypatch)
    k = 5
    loss = PseudoCorrespondenceLoss(negatives=negatives, max_pairs=None, max_tokens=75, seed=seed)
    fast = _grads(lambda x, y: loss(x, y, mask=mask), a, b)
    candidates, pool = record.positions  # (2P, c) each, rows direction-major
    pairs = candidates.shape[0] // 2
    assert candidates.shape[1] == _sampled_matches.candidates(75, k) == 5

    def subsample(direction: int, pair: int) -> tuple[list[int], list[int]]:
        row = direction * pairs + pair
        keep_c = valid[[p for p in range(3) for q in range(3) if p != q][pair]]
        keep_q = valid[[q for p in range(3) for q in range(3) if p != q][pair]]
        cand = [t for t in candidates[row].tolist() if keep_c[t]]
        return cand, [t for t in pool[row].tolist() if keep_q[t]]

    draw = None
    if negatives != "all":
        (negs,) = record.negatives
        negs = negs.view(2 * pairs, -1, k, negatives)

        def draw(direction: int, pair: int, anchor: int, rank: int) -> list[int]:
            row = direction * pairs + pair
            column = candidates[row].tolist().index(anchor)
            return negs[row, column, rank].tolist()

    slow = _grads(
        lambda x, y: ref.inter_loss(
            x, y, None, mask, k=k, margin=0.4, draw=draw, subsample=subsample
        ),
        a,
        b,
    )
    assert float(slow[0]) > 0
    for got, want in zip(fast, slow, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_max_tokens_at_least_n_is_the_exact_loss() -> None:
    a, b = _tokens(3)
    exact = TopoAlignLoss(max_pairs=None, negatives="all")(a, b)
    for m in (40, 41, 1000):
        same = TopoAlignLoss(max_pairs=None, negatives="all", max_tokens=m)(a, b)
        assert torch.equal(same, exact)


def test_sampled_search_is_reproducible_and_depends_on_the_seed() -> None:
    a, b = _tokens(4)

    def run(seed: int) -> list[float]:
        loss = PseudoCorrespondenceLoss(max_pairs=None, max_tokens=60, seed=seed)
        return [float(loss(a, b)) for _ in range(3)]

    first = run(1)
    assert first == run(1)
    assert first != run(2)
    assert len(set(first)) > 1  # the draw advances from call to call


def test_masked_tokens_take_no_part_in_the_sampled_search() -> None:
    a, b = _tokens(5)
    mask = _mask(5)
    loss = PseudoCorrespondenceLoss(max_pairs=None, max_tokens=60, seed=0)
    base = loss(a, b, mask=mask)
    noisy_a, noisy_b = a.clone(), b.clone()
    noise = torch.randn(a.shape, generator=torch.Generator().manual_seed(9), dtype=a.dtype)
    noisy_a[~mask] += 5 * noise[~mask]
    noisy_b[~mask] -= 5 * noise[~mask]
    again = PseudoCorrespondenceLoss(max_pairs=None, max_tokens=60, seed=0)(
        noisy_a, noisy_b, mask=mask
    )
    assert torch.equal(base, again)
