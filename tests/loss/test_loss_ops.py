"""Tests of the private vectorised helpers."""

from __future__ import annotations

import pytest
import torch

from lightly_topo.loss import _grams, _ops, _select


def test_sample_excluding_avoids_excluded_and_masked_tokens_uniformly() -> None:
    gen = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True, False, True, True, True, False, True, True]])
    exclude = torch.tensor([[[2, 6, 0], [7, 3, 4]]])
    exclude_valid = torch.tensor([[[True, True, False], [True, True, True]]])
    index, count = _ops.sample_excluding(mask, exclude, exclude_valid, 6000, gen)
    assert count.tolist() == [[4, 3]]
    assert set(index[0, 0].tolist()) == {0, 3, 4, 7}
    assert set(index[0, 1].tolist()) == {0, 2, 6}
    freq = torch.bincount(index[0, 0], minlength=8)[[0, 3, 4, 7]].float() / 6000
    assert bool(((freq - 0.25).abs() < 0.03).all())


def test_knn_and_mutual_nearest_neighbours_match_brute_force() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 50, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 50, 4, generator=gen, dtype=torch.float64)
    mask = torch.rand(2, 50, generator=gen) > 0.2
    anchors = torch.arange(50).expand(2, 50)
    nb, found = _ops.knn(x, anchors, mask, 3, metric="euclidean")
    assert bool(found.all())
    dist = torch.cdist(x, x).masked_fill(~mask.unsqueeze(1), float("inf"))
    dist.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    assert torch.equal(nb, dist.topk(3, largest=False).indices)
    old = _ops.CHUNK_ELEMENTS
    _ops.CHUNK_ELEMENTS = 2 * 50 * 7  # force several chunks
    try:
        chunked = _ops.mutual_nearest_neighbours(x, y, mask, mask)
    finally:
        _ops.CHUNK_ELEMENTS = old
    full = _ops.mutual_nearest_neighbours(x, y, mask, mask)
    for u, v in zip(chunked, full):
        assert torch.equal(u, v)
    cos = torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(
        y, dim=-1
    ).transpose(1, 2)
    cos = cos.masked_fill(~mask.unsqueeze(1), -2).masked_fill(~mask.unsqueeze(2), -2)
    nn_xy, nn_yx = cos.argmax(2), cos.argmax(1)
    matched = mask & (nn_yx.gather(1, nn_xy) == torch.arange(50))
    assert torch.equal(full[2], matched)


def test_hinge_sum_gradient_matches_autograd_of_dense_form() -> None:
    gen = torch.Generator().manual_seed(2)
    d_pos = torch.rand(3, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    d_neg = torch.rand(3, 4, 20, generator=gen, dtype=torch.float64, requires_grad=True)
    pos_valid = torch.rand(3, 4, 5, generator=gen) > 0.3
    neg_valid = torch.rand(3, 4, 20, generator=gen) > 0.3
    out = _ops.hinge_sum(d_pos, d_neg, pos_valid, neg_valid, 0.2)
    dense = torch.relu(d_pos.unsqueeze(-1) - d_neg.unsqueeze(-2) + 0.2)
    dense = (dense * (pos_valid.unsqueeze(-1) & neg_valid.unsqueeze(-2))).sum((-1, -2))
    assert torch.allclose(out, dense)
    weights = torch.rand(3, 4, generator=gen, dtype=torch.float64)
    g1 = torch.autograd.grad((out * weights).sum(), (d_pos, d_neg))
    g2 = torch.autograd.grad((dense * weights).sum(), (d_pos, d_neg))
    for u, v in zip(g1, g2):
        assert torch.allclose(u, v)


def test_knn_flags_missing_neighbours() -> None:
    x = torch.randn(1, 6, 3, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, True, False, False]])
    nb, found = _ops.knn(x, torch.tensor([[0, 1, 3]]), mask, 3, metric="cosine")
    assert found.sum(-1).tolist() == [[2, 2, 2]]
    assert bool((nb[found] != torch.tensor([0, 1, 3]).repeat_interleave(2)).all())


def test_sampled_dot_matches_dense_form_in_chunks() -> None:
    gen = torch.Generator().manual_seed(3)
    u = torch.randn(2, 7, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 9, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 9, (2, 7, 5), generator=gen)
    old = _ops.DOT_CHUNK_ELEMENTS
    _ops.DOT_CHUNK_ELEMENTS = 2 * 5 * 4 * 2  # two anchors per chunk
    try:
        assert torch.autograd.gradcheck(_ops.sampled_dot, (u, y, index))
        out = _ops.sampled_dot(u, y, index)
    finally:
        _ops.DOT_CHUNK_ELEMENTS = old
    dense = (u.unsqueeze(2) * _ops.gather_tokens(y, index)).sum(-1)
    assert torch.allclose(out, dense)


def test_token_grams_whole_and_on_demand_agree_with_knn() -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 40, 6, generator=gen, dtype=torch.float64)
    mask = torch.rand(3, 40, generator=gen) > 0.2
    x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
    whole = _grams.TokenGrams(x, _ops.Workspace())
    on_demand = _grams.TokenGrams(x, full=False)
    assert whole.gram is not None and on_demand.gram is None
    sets = torch.tensor([2, 0])
    anchors = torch.randint(0, 40, (2, 9), generator=gen)
    # a masked anchor is a zero vector: its cosine scores all tie, and the order among
    # equal scores is not specified, so rows are compared where the anchor is valid
    valid = _ops.gather_values(mask[sets], anchors)
    for metric in ("euclidean", "cosine"):
        expected = _ops.knn(x[sets], anchors, mask[sets], 4, metric)
        for grams in (whole, on_demand):
            got = grams.knn(sets, anchors, mask[sets], 4, metric)
            assert torch.equal(got[0][valid], expected[0][valid])
            assert torch.equal(got[1][valid], expected[1][valid])
        every = _ops.knn(x, torch.arange(40).expand(3, 40), mask, 4, metric)
        got = whole.knn(None, None, mask, 4, metric)
        assert torch.equal(got[0][mask], every[0][mask]) and torch.equal(
            got[1][mask], every[1][mask]
        )
    cols = torch.randint(0, 40, (2, 9, 5), generator=gen)
    xn = torch.nn.functional.normalize(x[sets], dim=-1)
    dense = (_ops.gather_tokens(xn, anchors).unsqueeze(2) * _ops.gather_tokens(xn, cols)).sum(-1)
    assert torch.allclose(whole.cosine(sets, anchors, cols), dense, rtol=1e-12, atol=1e-14)
    assert torch.allclose(on_demand.cosine(sets, anchors, cols), dense, rtol=1e-12, atol=1e-14)


def test_token_grams_rank_in_blocks() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 30, 4, generator=gen, dtype=torch.float64)
    mask = torch.ones(2, 30, dtype=torch.bool)
    full = _grams.TokenGrams(x).knn(None, None, mask, 3, "euclidean")
    old = _grams.RANK_BLOCK_ELEMENTS
    _grams.RANK_BLOCK_ELEMENTS = 2 * 30 * 4  # blocks of 4 anchors
    try:
        blocked = _grams.TokenGrams(x).knn(None, None, mask, 3, "euclidean")
    finally:
        _grams.RANK_BLOCK_ELEMENTS = old
    assert torch.equal(full[0], blocked[0])


def test_cosine_at_gradient_matches_dense_form() -> None:
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 11, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    sets = torch.tensor([2, 0, 2, 1])
    rows = torch.randint(0, 11, (4, 6), generator=gen)
    cols = torch.randint(0, 11, (4, 6, 3), generator=gen)

    def dense(y: torch.Tensor) -> torch.Tensor:
        sel = torch.nn.functional.normalize(y, dim=-1)[sets]
        return (_ops.gather_tokens(sel, rows).unsqueeze(2) * _ops.gather_tokens(sel, cols)).sum(-1)

    grams = _grams.TokenGrams(x)
    assert torch.allclose(grams.similarity(sets, rows, cols), dense(x))

    def fused(y: torch.Tensor) -> torch.Tensor:
        inv = 1.0 / y.detach().norm(dim=-1)
        units = y.detach() * inv.unsqueeze(-1)
        return _ops.cosine_at(y, units, inv, sets, rows, cols, dense(y).detach())

    assert torch.autograd.gradcheck(fused, (x,))
    weights = torch.randn(4, 6, 3, generator=gen, dtype=torch.float64)
    (got,) = torch.autograd.grad((grams.similarity(sets, rows, cols) * weights).sum(), x)
    (expected,) = torch.autograd.grad((dense(x) * weights).sum(), x)
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_mutual_nearest_neighbours_one_partner_on_ties() -> None:
    # tokens 0 and 1 of xa are identical: both have token 2 of xb as nearest, only the
    # first is its partner
    xa = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    xb = torch.tensor([[[-1.0, 0.0], [0.0, 1.0], [1.0, 0.1]]], dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.bool)
    nn_ab, nn_ba, matched_a, matched_b = _ops.mutual_nearest_neighbours(xa, xb, mask, mask)
    assert nn_ab.tolist() == [[2, 2, 1]]
    assert matched_a.tolist() == [[True, False, True]]
    assert matched_b.tolist() == [[False, True, True]]
    assert nn_ba[0, 1] == 2 and nn_ba[0, 2] == 0


@pytest.mark.parametrize("largest", [False, True])
def test_select_k_equals_topk_on_long_padded_rows(largest: bool) -> None:
    gen = torch.Generator().manual_seed(6)
    length, k = 1500, 5
    width = _select.padded_length(length, k)
    assert width % _select.WIDTH == 0 and width > length
    worst = float("-inf") if largest else float("inf")
    rows = torch.full((3, 7, width), worst)
    rows[..., :length] = torch.randn(3, 7, length, generator=gen)
    rows[0, 0, :length] = torch.randint(0, 3, (length,), generator=gen).float()  # ties
    rows[1, 1, 10:] = worst  # fewer than k finite values
    values, index = _select.select_k(rows, k, largest=largest, length=length)
    ref = rows[..., :length].topk(k, dim=-1, largest=largest, sorted=True)
    assert torch.equal(values, ref.values)
    assert torch.equal(rows.gather(-1, index), values)
    assert bool((index < length).all())
    untied = torch.ones(3, 7, dtype=torch.bool)
    untied[0, 0] = untied[1, 1] = False
    assert torch.equal(index[untied], ref.indices[untied])


def test_symmetric_gram_equals_bmm() -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, _grams.SYMMETRIC_MIN_TOKENS + 37, 6, generator=gen, dtype=torch.float64)
    out = torch.empty(2, x.shape[1], x.shape[1], dtype=torch.float64)
    gram = _grams.symmetric_gram(x, out)
    assert torch.allclose(gram, torch.bmm(x, x.transpose(1, 2)), rtol=1e-12, atol=1e-12)
    assert torch.allclose(gram, gram.transpose(1, 2), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_token_grams_knn_on_long_rows_matches_brute_force(metric: str) -> None:
    gen = torch.Generator().manual_seed(8)
    n = 1400
    x = torch.randn(2, n, 8, generator=gen, dtype=torch.float64)
    mask = torch.rand(2, n, generator=gen) > 0.1
    anchors = torch.randint(0, n, (2, 30), generator=gen)
    mask.scatter_(1, anchors, True)  # valid anchors: no ties among their scores
    x = torch.where(mask.unsqueeze(-1), x, 0.0)
    got, found = _grams.TokenGrams(x, _ops.Workspace()).knn(None, anchors, mask, 5, metric)
    expected, expected_found = _ops.knn(x, anchors, mask, 5, metric)
    assert torch.equal(got, expected) and torch.equal(found, expected_found)
    every, _ = _grams.TokenGrams(x).knn(None, None, mask, 5, metric)
    assert torch.equal(every.gather(1, anchors.unsqueeze(-1).expand(-1, -1, 5)), expected)


def test_max_k1_returns_the_first_maximum() -> None:
    gen = torch.Generator().manual_seed(9)
    rows = torch.randint(0, 50, (3, 5, 8 * _select.WIDTH), generator=gen).float()
    rows[0, 0] = float("-inf")
    values, index = _select.max_k1(rows)
    ref = rows.max(-1)
    assert torch.equal(values, ref.values) and torch.equal(index, ref.indices)
    assert torch.equal(index, rows.argmax(-1))


@pytest.mark.parametrize("n", [27, _ops.SORT_ORDER_MAX_TOKENS + 88])
def test_valid_order_and_sampling_without_exclusions(n: int) -> None:
    gen = torch.Generator().manual_seed(10)
    mask = torch.rand(3, n, generator=gen) > 0.4
    mask[2] = False
    order = _ops.valid_order(mask)
    assert torch.equal(order, torch.argsort((~mask).to(torch.int8), dim=1, stable=True))
    none = torch.zeros(3, 2, 0, dtype=torch.long)
    index, count = _ops.sample_excluding(mask, none, none.bool(), 20000, gen)
    assert count[:, 0].tolist() == mask.sum(1).tolist()
    for row in range(2):
        drawn = torch.bincount(index[row].reshape(-1), minlength=n).float()
        assert bool((drawn[~mask[row]] == 0).all())
        expected = index[row].numel() / int(mask[row].sum())
        assert float((drawn[mask[row]] / expected - 1).abs().max()) < 0.6


def test_check_finite_single_bad_value_overflow_and_masked_tokens() -> None:
    from lightly_topo.loss._tokens import LossInputError, check_finite

    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4] = False
    x = torch.randn(2, 6, 3)
    huge = torch.full((2, 6, 3), 3e38)  # finite, but its float32 sum overflows
    out_x, b = check_finite(x, mask, "feats_a", huge, "feats_b")
    assert torch.equal(out_x[mask], x[mask]) and torch.equal(b[mask], huge[mask])
    assert bool((b[1, 4] == 0).all())
    masked_nan = x.clone()
    masked_nan[1, 4, 0] = float("nan")  # a masked token is never read
    assert bool(torch.isfinite(check_finite(masked_nan, mask, "feats_a")).all())
    for bad in (float("nan"), float("inf"), float("-inf")):
        y = x.clone()
        y[0, 2, 1] = bad
        with pytest.raises(LossInputError, match="feats_b contains NaN or Inf"):
            check_finite(x, mask, "feats_a", y, "feats_b")


def test_workspace_keeps_cpu_buffers_only() -> None:
    workspace = _ops.Workspace()
    first = _ops._buffer(workspace, "gram", (4, 5), torch.float32, torch.device("cpu"))
    again = _ops._buffer(workspace, "gram", (2, 5), torch.float32, torch.device("cpu"))
    assert again.data_ptr() == first.data_ptr()
    meta = _ops._buffer(workspace, "other", (4, 5), torch.float32, torch.device("meta"))
    assert meta.device.type == "meta" and list(workspace._buffers) == ["gram"]
