"""Tests of the private vectorised helpers."""

from __future__ import annotations

import torch

from lightly_topo.loss import _ops


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
