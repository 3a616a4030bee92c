"""Time and peak memory of a training step (forward + backward) of each lightly-topo backbone.

Run:
    python benchmarks/bench_backbones.py --out benchmarks/results/backbones_cpu.md
    python benchmarks/bench_backbones.py --device cuda --out benchmarks/results/backbones_cuda.md

Rows: ``swin`` (Swin-UNETR encoder), ``resenc`` (residual CNN; on cuda nnU-Net's ResEnc-M
layout with a full-resolution first level, on CPU the default stride-2 layout), ``vit`` (3D ViT, all tokens),
``vit+mae`` (ViT encoding 25% of the tokens plus ``MAEDecoder3D``), and ``shared x4`` (the
shared single-channel ``swin`` encoder in a ``MultiModalEncoder`` over 4 modalities with one
missing per sample, fused embedding). Sizes: on cuda the paper-scale settings (96^3 crops,
feature size 48, ViT-B with 16^3 patches), on CPU small ones (32^3 crops, feature size 12,
a 4-block ViT). Each step is fp32 and, on cuda, bf16 autocast too; the step is
``loss = sum of every level's mean + pooled embedding's mean``, then ``backward``.

Before timing, every configuration is checked: the features have the declared shapes and
every parameter that takes part gets a finite gradient (``checks`` column).

Time: median over ``--iters`` steps after ``--warmup`` steps (``torch.cuda.synchronize``
around each step on cuda). Memory: ``torch.cuda.max_memory_allocated`` during the timed steps
on cuda, the process's peak resident set size on CPU (an upper bound, including the earlier
rows).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _configs(device: str) -> list[dict[str, Any]]:
    if device == "cuda":
        size, batch = 96, 2
        swin = {"feature_size": 48}
        resenc: dict[str, Any] = {
            "features": (32, 64, 128, 256, 320),
            "blocks_per_stage": (1, 3, 4, 6, 6),
            "strides": (1, 2, 2, 2, 2),
        }
        vit = {"img_size": 96, "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12}
        dec = {"decoder_embed_dim": 384, "decoder_depth": 4, "decoder_num_heads": 12}
    else:
        size, batch = 32, 2
        swin = {"feature_size": 12, "depths": (1, 1, 1, 1), "window_size": 4}
        resenc = {"features": (8, 16, 32, 64), "blocks_per_stage": 1, "strides": (2, 2, 2, 2)}
        vit = {"img_size": 32, "patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 4}
        dec = {"decoder_embed_dim": 48, "decoder_depth": 1, "decoder_num_heads": 4}
    return [
        {"row": "swin", "backbone": "swin", "kwargs": swin, "size": size, "batch": batch},
        {"row": "resenc", "backbone": "resenc", "kwargs": resenc, "size": size, "batch": batch},
        {"row": "vit", "backbone": "vit", "kwargs": vit, "size": size, "batch": batch},
        {
            "row": "vit+mae",
            "backbone": "vit",
            "kwargs": vit,
            "size": size,
            "batch": batch,
            "mae": dec,
        },
        {
            "row": "shared x4",
            "backbone": "swin",
            "kwargs": swin,
            "size": size,
            "batch": batch,
            "modalities": 4,
        },
    ]


def _build(cfg: dict[str, Any], device: torch.device) -> tuple[Any, Any]:
    from lightly.models import utils

    from lightly_topo.models import MAEDecoder3D, MultiModalEncoder, build_backbone, patchify3d

    torch.manual_seed(0)
    net = build_backbone(cfg["backbone"], **cfg["kwargs"]).to(device)
    b, s = cfg["batch"], cfg["size"]
    if "modalities" in cfg:
        m = cfg["modalities"]
        enc = MultiModalEncoder(net, mode="shared", num_modalities=m).to(device)
        image = torch.randn(b, m, s, s, s, device=device)
        mask = torch.ones(b, m, dtype=torch.bool, device=device)
        mask[torch.arange(b), torch.arange(b) % m] = False

        def step() -> torch.Tensor:
            feats = enc.forward_fused(image, mask)
            return sum(f.float().mean() for f in feats) + enc.backbone.pool(feats).float().mean()

        return enc, step
    x = torch.randn(b, 1, s, s, s, device=device)
    if "mae" in cfg:
        dec = MAEDecoder3D(net.grid_size, net.patch_size, embed_dim=net.embed_dim, **cfg["mae"]).to(
            device
        )
        target_all = patchify3d(x, net.patch_size)

        def step() -> torch.Tensor:
            idx_keep, idx_mask = utils.random_token_mask(
                (b, net.sequence_length), 0.75, device=device
            )
            pred = dec(net.encode(x, idx_keep=idx_keep), idx_keep, idx_mask)
            target = utils.get_at_index(target_all, idx_mask - 1)
            return (pred.float() - target).pow(2).mean()

        return torch.nn.ModuleList([net, dec]), step

    def step() -> torch.Tensor:
        feats = net.forward_features(x)
        expected = [
            (b, c, s // st, s // st, s // st)
            for c, st in zip(net.feature_channels, net.feature_strides)
        ]
        if [tuple(f.shape) for f in feats] != expected:
            raise AssertionError(
                f"{cfg['row']}: shapes {[tuple(f.shape) for f in feats]} != {expected}"
            )
        return sum(f.float().mean() for f in feats) + net.pool(feats).float().mean()

    return net, step


def run(
    cfg: dict[str, Any], device: torch.device, dtype: str, warmup: int, iters: int
) -> dict[str, Any]:
    model, step = _build(cfg, device)
    model.train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")

    def one() -> None:
        model.zero_grad(set_to_none=True)
        with autocast:
            loss = step()
        loss.backward()

    one()
    bad = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad
        and "mask_token" not in n
        and (p.grad is None or not torch.isfinite(p.grad).all())
    ]
    for _ in range(max(0, warmup - 1)):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        one()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    params = sum(p.numel() for p in model.parameters()) / 1e6
    result = {
        "row": cfg["row"],
        "dtype": dtype,
        "input": f"{cfg['batch']}x{cfg.get('modalities', 1)}x{cfg['size']}^3",
        "params_M": round(params, 2),
        "step_ms": round(1000 * statistics.median(times), 1),
        "peak_MiB": round(peak, 0),
        "checks": "ok" if not bad else f"no/invalid grad: {bad[:3]}",
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False on this machine.")
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    dtypes = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
    rows = []
    for cfg in _configs(args.device):
        for dt in dtypes:
            rows.append(run(cfg, device, dt, args.warmup, args.iters))
            print(rows[-1], flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()

    machine = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name()
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
    }
    cols = ["row", "dtype", "input", "params_M", "step_ms", "peak_MiB", "checks"]
    lines = [
        f"# Backbone training step ({args.device})",
        "",
        "| " + " | ".join(f"{k}: {v}" for k, v in machine.items()) + " |",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
        *("| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows),
        "",
        "peak_MiB: torch.cuda.max_memory_allocated on cuda; process peak RSS on cpu.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".json").write_text(
            json.dumps({"machine": machine, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
