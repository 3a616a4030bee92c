"""gather_distributed with two gloo processes equals the single-process loss on the whole batch."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from lightly_topo.loss import TopoAlignLoss

WORLD = 2
IDS = [10, 11, 11, 12, 13, 14]  # subject 11 appears on both ranks: never paired with itself


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 20, 8, generator=gen, dtype=torch.float64)
    b = a + 0.5 * torch.randn(6, 20, 8, generator=gen, dtype=torch.float64)
    mask = torch.rand(6, 20, generator=gen) > 0.2
    return a, b, mask


def _make_loss(gather: bool, max_pairs: int | None) -> TopoAlignLoss:
    return TopoAlignLoss(
        intra_weight=1.0,
        inter_weight=2.0,
        k=3,
        negatives="all",
        max_pairs=max_pairs,
        gather_distributed=gather,
        seed=5,
    )


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD
    )
    try:
        a, b, mask = _data()
        rows = slice(3 * rank, 3 * rank + 3)
        results = {}
        for max_pairs in (None, 4):
            la = a[rows].clone().requires_grad_(True)
            lb = b[rows].clone().requires_grad_(True)
            loss_fn = _make_loss(True, max_pairs)
            loss = loss_fn(la, lb, subject_ids=IDS[rows], mask=mask[rows])
            loss.backward()
            results[max_pairs] = (loss.detach(), la.grad, lb.grad)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        torch_dist.destroy_process_group()


def test_gather_distributed_equals_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    a, b, mask = _data()
    for max_pairs in (None, 4):
        ga = a.clone().requires_grad_(True)
        gb = b.clone().requires_grad_(True)
        single = _make_loss(False, max_pairs)(ga, gb, subject_ids=IDS, mask=mask)
        single.backward()
        assert ga.grad is not None and gb.grad is not None
        losses = torch.stack([r[max_pairs][0] for r in ranks])
        assert torch.allclose(losses.mean(), single.detach(), rtol=1e-10)
        # DDP averages gradients over processes
        grad_a = torch.cat([r[max_pairs][1] for r in ranks]) / WORLD
        grad_b = torch.cat([r[max_pairs][2] for r in ranks]) / WORLD
        assert torch.allclose(grad_a, ga.grad, rtol=1e-8, atol=1e-12)
        assert torch.allclose(grad_b, gb.grad, rtol=1e-8, atol=1e-12)
        assert float(ga.grad.abs().sum()) > 0
