"""Tests of the fused CPU kernel against the PyTorch paths."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import pytest
import torch

from lightly_topo.loss import (
    CrossModalTripletLoss,
    PseudoCorrespondenceLoss,
    TopoAlignLoss,
    _grams,
    _kernels,
)

pytest.importorskip("numba")


@pytest.fixture
def kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kernels, "ENABLED", True)


def _reference(
    gram: torch.Tensor,
    rows: torch.Tensor,
    exclude: torch.Tensor,
    group: torch.Tensor,
    bias: torch.Tensor,
    scale: torch.Tensor,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    scores = gram[rows] * scale[group] + bias[group]
    keep = exclude >= 0
    scores[keep.nonzero().squeeze(1), exclude[keep]] = float("-inf")
    top = scores.topk(k, dim=-1)
    return top.values, scores


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("n", "k"), [(n, k) for n in (7, 100, 1000, 1728) for k in (1, 5, 12) if k <= n]
)
def test_top_k_rows_equals_topk(kernels: None, dtype: torch.dtype, n: int, k: int) -> None:
    gen = torch.Generator().manual_seed(n + k)
    groups, rows_total = 3, 40
    gram = torch.randn(groups * n, n, generator=gen, dtype=dtype)
    rows = torch.randint(0, groups * n, (rows_total,), generator=gen)
    group = torch.randint(0, groups, (rows_total,), generator=gen)
    exclude = torch.randint(-1, n, (rows_total,), generator=gen)
    bias = torch.randn(groups, n, generator=gen, dtype=dtype)
    bias = bias.masked_fill(torch.rand(groups, n, generator=gen) < 0.3, float("-inf"))
    scale = torch.rand(groups, n, generator=gen, dtype=dtype) + 0.5
    index, found = _kernels.top_k_rows(gram, rows, exclude, group, bias, scale, k)
    values, scores = _reference(gram, rows, exclude, group, bias, scale, k)
    assert index.shape == found.shape == (rows_total, k)
    assert torch.equal(found, values > float("-inf"))
    picked = scores.gather(1, index)
    assert torch.equal(picked[found], values[found])
    assert bool((index != exclude.unsqueeze(1))[found].all())
    assert bool(((index >= 0) & (index < n)).all())


def test_top_k_rows_ties_and_empty_rows(kernels: None) -> None:
    n = 640
    gram = torch.zeros(2, n)
    gram[0, ::7] = 1.0  # many equal maxima
    bias = torch.zeros(2, n)
    bias[1] = float("-inf")  # nothing valid
    rows = torch.tensor([0, 0, 1])
    group = torch.tensor([0, 0, 1])
    exclude = torch.tensor([-1, 7, 3])
    index, found = _kernels.top_k_rows(gram, rows, exclude, group, bias, torch.ones(2, n), 5)
    assert bool(found[:2].all()) and not bool(found[2].any())
    assert bool((gram[0, index[:2]] == 1.0).all())
    assert 7 not in index[1].tolist()
    assert index[2].tolist() == [3] * 5
    assert len(set(index[0].tolist())) == 5


def test_usable_only_for_float_cpu_tensors(kernels: None) -> None:
    assert _kernels.usable(torch.zeros(2), torch.zeros(2, dtype=torch.float64))
    assert not _kernels.usable(torch.zeros(2, dtype=torch.bfloat16))
    assert not _kernels.usable(torch.zeros(2, dtype=torch.float16))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_token_grams_knn_same_with_and_without_kernel(
    monkeypatch: pytest.MonkeyPatch, metric: str
) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 700, 16, generator=gen, dtype=torch.float64)
    mask = torch.rand(3, 700, generator=gen) > 0.2
    anchors = torch.randint(0, 700, (3, 90), generator=gen)
    grams = _grams.TokenGrams(x)
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(_kernels, "ENABLED", enabled)
        results.append(grams.knn(None, None, mask, 6, metric))
        results.append(grams.knn(torch.tensor([2, 0]), anchors[:2], mask[[2, 0]], 6, metric))
    for got, want in zip(results[:2], results[2:]):
        assert torch.equal(got[0], want[0])
        assert torch.equal(got[1], want[1])


@pytest.mark.parametrize("negatives", [5, "all"])
@pytest.mark.parametrize(
    "make",
    [
        lambda neg: CrossModalTripletLoss(negatives=neg),
        lambda neg: PseudoCorrespondenceLoss(negatives=neg, max_pairs=None),
        lambda neg: TopoAlignLoss(negatives=neg, seed=0),
    ],
)
def test_losses_same_with_and_without_kernel(
    monkeypatch: pytest.MonkeyPatch, negatives: int | str, make: object
) -> None:
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(3, 12, 8, 8, 8, generator=gen, dtype=torch.float64)
    b = torch.randn(3, 12, 8, 8, 8, generator=gen, dtype=torch.float64)
    mask = torch.rand(3, 512, generator=gen) > 0.25
    outputs = []
    for enabled in (True, False):
        monkeypatch.setattr(_kernels, "ENABLED", enabled)
        torch.manual_seed(0)
        loss = make(negatives)  # type: ignore[operator]
        xa, xb = a.clone().requires_grad_(), b.clone().requires_grad_()
        kwargs = {} if isinstance(loss, CrossModalTripletLoss) else {"subject_ids": [0, 1, 2]}
        value = loss(xa, xb, mask=mask, **kwargs)
        value.backward()
        outputs.append((value.detach(), xa.grad, xb.grad))
    (v1, ga1, gb1), (v0, ga0, gb0) = outputs
    assert v1.item() > 0
    torch.testing.assert_close(v1, v0, rtol=1e-12, atol=0.0)
    torch.testing.assert_close(ga1, ga0, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(gb1, gb0, rtol=1e-10, atol=1e-14)


def _kernel_result(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    gram = torch.randn(n, n, generator=gen)
    rows = torch.arange(n)
    group = torch.zeros(n, dtype=torch.long)
    bias = torch.zeros(1, n)
    return _kernels.top_k_rows(gram, rows, rows, group, bias, torch.ones(1, n), 5)


def _in_child(queue: object) -> None:
    _kernels.THREAD_MIN_ELEMENTS = 1
    torch.set_num_threads(2)
    index, found = _kernel_result(600)
    queue.put((index.tolist(), found.tolist()))  # type: ignore[attr-defined]


def test_kernel_threads_survive_fork(kernels: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kernels, "THREAD_MIN_ELEMENTS", 1)
    torch.set_num_threads(2)
    expected = _kernel_result(600)  # threads started in the parent before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_in_child, args=(queue,))
    child.start()
    got = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert got == (expected[0].tolist(), expected[1].tolist())


def test_numba_loaded_only_for_long_rows() -> None:
    code = (
        "import sys, torch\n"
        "from lightly_topo.loss import TopoAlignLoss\n"
        "loss = TopoAlignLoss(seed=0)\n"
        "loss(torch.randn(2, 8, 3, 3, 3), torch.randn(2, 8, 3, 3, 3), subject_ids=[0, 1])\n"
        "print('numba' in sys.modules)\n"
        "loss(torch.randn(2, 8, 6, 6, 6), torch.randn(2, 8, 6, 6, 6), subject_ids=[0, 1])\n"
        "print('numba' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LIGHTLY_TOPO_KERNELS"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["False", "True"]


def test_broken_numba_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kernels, "ENABLED", True)
    monkeypatch.setattr(_kernels, "_MODULE", None)
    monkeypatch.setattr(_kernels, "_FAILED", False)
    import lightly_topo.loss

    monkeypatch.delattr(lightly_topo.loss, "_kernels_numba", raising=False)
    monkeypatch.setitem(sys.modules, "lightly_topo.loss._kernels_numba", None)  # import fails
    with pytest.warns(RuntimeWarning, match="PyTorch path"):
        assert not _kernels.usable(torch.zeros(2))
    assert not _kernels.usable(torch.zeros(2))  # no second warning (pytest errors on it)
    x = torch.randn(2, 200, 8, dtype=torch.float64)
    grams = _grams.TokenGrams(x)
    index, found = grams.knn(None, None, torch.ones(2, 200, dtype=torch.bool), 3, "euclidean")
    assert bool(found.all()) and index.shape == (2, 200, 3)
