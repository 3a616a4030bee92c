"""Time and peak memory of the TACO losses (forward + backward) next to Lightly's NTXentLoss.

Run:
    python benchmarks/bench_loss.py --full-large --out benchmarks/results/loss_cpu.md
    python benchmarks/bench_loss.py --device cuda --out benchmarks/results/loss_cuda.md

Tables:
1. Each loss for 27, 1728 and 13824 tokens (batch 4, 192 channels, two modalities),
   without and with ``max_tokens`` (13824 tokens without ``max_tokens`` only with
   ``--full-large``: up to 30 s per step on CPU), next to ``NTXentLoss`` on the pooled
   features of the same batch.
2. Batch 2, 192 channels, ``TopoAlignLoss`` (intra and inter terms, both ways) at 27, 216
   and 1728 tokens on 2 CPU threads, next to the figures of the authors' released
   implementation quoted in the issue (not measured here).

Time is wall-clock and process CPU time (``time.process_time``, all threads), each the
median of the timed runs. As a load-independent unit every configuration also times a
plain fp32 ``(1728, 192) @ (192, 1728)`` matmul in the same process ("matmul
equivalents" = loss time / matmul time).
3. (cpu only) ``TopoAlignLoss`` on a four-modality stack (2 subjects, 192 channels,
   1728 tokens), all six modality pairs and one random pair per subject.
4. (cuda only) A MONAI SwinViT encoder step (feature size 48, 8 single-channel 96^3
   volumes = batch 2 x 4 modalities, bf16 autocast, forward + backward) and the TACO
   terms at 1728 tokens (and at the recipe's 27 tokens) as a percentage of it.

Memory: on CPU every configuration runs in its own subprocess and the peak is the
process's peak resident set size during the first run (``resource.getrusage`` ``ru_maxrss``)
minus its resident set size just before it (``/proc/self/statm``): the extra memory the
loss needed. On cuda it is ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``, minus the memory allocated before the run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lightly_topo.benchmark.provenance import git_commit  # noqa: E402
from lightly_topo.loss import _kernels  # noqa: E402

#: Figures quoted in the issue for the authors' released implementation (2 CPU threads,
#: batch 2, 192 channels, intra and inter both ways); NOT measured by this script.
QUOTED_AUTHORS_S = {27: 0.011, 216: 0.12, 1728: 6.4}
MAX_TOKENS = 512
#: The smaller max_tokens of the level sweep (at most 1728 tokens).
SWEEP_SMALL_MAX_TOKENS = 256
SLOW_S = 5.0
#: max_tokens settings of the authors' comparison at 1728 tokens.
AUTHORS_MAX_TOKENS = (None, 512, 256, 128)


def _matmul_s(device: torch.device, reps: int = 7) -> tuple[float, float]:
    """Median wall and CPU time of a fp32 (1728, 192) @ (192, 1728) matmul."""
    x = torch.randn(1728, 192, device=device)
    y = torch.randn(192, 1728, device=device)
    walls, cpus = [], []
    for i in range(reps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        x @ y
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return sorted(walls)[reps // 2], sorted(cpus)[reps // 2]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _make_loss(name: str, max_tokens: int | None) -> torch.nn.Module:
    from lightly.loss import NTXentLoss

    from lightly_topo.loss import CrossModalTripletLoss, PseudoCorrespondenceLoss, TopoAlignLoss

    if name == "NTXentLoss":
        return NTXentLoss()
    cls = {
        "CrossModalTripletLoss": CrossModalTripletLoss,
        "PseudoCorrespondenceLoss": PseudoCorrespondenceLoss,
        "TopoAlignLoss": TopoAlignLoss,
    }[name]
    return cls(max_tokens=max_tokens, seed=0)


def run_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Runs one configuration in this process and returns its figures."""
    device = torch.device(cfg["device"])
    if device.type == "cpu":
        torch.set_num_threads(cfg["threads"])
    gen = torch.Generator(device=device).manual_seed(0)
    b, n, c = cfg["batch"], cfg["tokens"], cfg["channels"]
    side = round(n ** (1 / 3))
    shape = (b, c, side, side, side) if side**3 == n else (b, n, c)
    dense_a = torch.randn(shape, generator=gen, device=device).requires_grad_(True)
    dense_b = torch.randn(shape, generator=gen, device=device).requires_grad_(True)
    loss_fn = _make_loss(cfg["loss"], cfg["max_tokens"]).to(device)
    ids = list(range(b))

    def step() -> None:
        dense_a.grad = dense_b.grad = None
        if cfg["loss"] == "NTXentLoss":
            dims = tuple(range(2, dense_a.ndim)) if dense_a.ndim == 5 else (1,)
            loss = loss_fn(dense_a.mean(dims), dense_b.mean(dims))
        elif cfg["loss"] == "CrossModalTripletLoss":
            loss = loss_fn(dense_a, dense_b)
        else:
            loss = loss_fn(dense_a, dense_b, subject_ids=ids)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    first = time.perf_counter() - t0
    first_cpu = time.process_time() - c0
    peak = (
        torch.cuda.max_memory_allocated() - base
        if device.type == "cuda"
        else max(0, _maxrss_bytes() - base)
    )
    times, cpu_times = [first], [first_cpu]
    mm_wall, mm_cpu = _matmul_s(device)
    ratios = [first / mm_wall]
    mm_walls, mm_cpus = [mm_wall], [mm_cpu]
    if first < SLOW_S:
        times, cpu_times, ratios, mm_walls, mm_cpus = [], [], [], [], []
        for _ in range(cfg["reps"]):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            # this VM's speed drifts over seconds: calibrate right after every run
            mm_wall, mm_cpu = _matmul_s(device, reps=3)
            mm_walls.append(mm_wall)
            mm_cpus.append(mm_cpu)
            ratios.append(times[-1] / mm_wall)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    return {
        **cfg,
        "time_s": median(times),
        "time_min_s": min(times),
        "cpu_s": median(cpu_times),
        "matmul_s": median(mm_walls),
        "matmul_cpu_s": median(mm_cpus),
        "mm_ratio": median(ratios),
        "load_1min": os.getloadavg()[0],
        "runs": len(times),
        "peak_mib": peak / 2**20,
        "stats": {k: float(v) for k, v in getattr(loss_fn, "last_stats", {}).items()},
    }


def run_isolated(cfg: dict[str, Any]) -> dict[str, Any]:
    """Runs a configuration in a fresh subprocess (CPU memory is per process)."""
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    if cfg.get("kernels") is False:
        env["LIGHTLY_TOPO_KERNELS"] = "0"
    proc = subprocess.run(
        [sys.executable, __file__, "--config", json.dumps(cfg)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"configuration {cfg} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def swin_step(device: torch.device, size: int = 96) -> dict[str, float]:
    """Time and memory of a MONAI SwinViT encoder step (bf16 autocast on cuda).

    ``size`` 96 is the recipe's crop; a smaller one only checks the code (``--dry-run``).
    """
    from monai.networks.nets.swin_unetr import SwinTransformer

    model = SwinTransformer(
        in_chans=1,
        embed_dim=48,
        window_size=(7, 7, 7),
        patch_size=(2, 2, 2),
        depths=(2, 2, 2, 2),
        num_heads=(3, 6, 12, 24),
        spatial_dims=3,
    ).to(device)
    x = torch.randn(8, 1, size, size, size, device=device)
    cuda = device.type == "cuda"

    def step() -> tuple[int, ...]:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            outs = model(x)
            loss = sum(o.float().mean() for o in outs)
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        return tuple(outs[2].shape)

    step()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        shape = step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {
        "time_s": times[2],
        "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan"),
        "stage2_shape": str(shape),
    }


def taco_on_swin_features(
    device: torch.device, modality_pairs: str, side: int = 12, max_tokens: int | None = None
) -> float:
    """Time of TopoAlignLoss on a (2, 4, 192, side, side, side) stack.

    ``side`` 12: the SwinViT 1/8 stage of 96^3 crops (1728 tokens); 24: the 1/4 stage
    (13824 tokens, run with ``max_tokens``); 3: its coarsest stage (27 tokens), the level of
    the released recipe.

    Forward + backward, median of 5 runs after one warm-up run; bf16 autocast on cuda.
    """
    from lightly_topo.loss import TopoAlignLoss

    gen = torch.Generator(device=device).manual_seed(0)
    shape = (2, 4, 192, side, side, side)
    stack = torch.randn(shape, generator=gen, device=device, requires_grad=True)
    loss_fn = TopoAlignLoss(modality_pairs=modality_pairs, max_tokens=max_tokens, seed=0)

    def step() -> None:
        stack.grad = None
        with torch.autocast(
            device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
        ):
            loss = loss_fn(stack, subject_ids=["s0", "s1"])
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[2]


def _authors_settings() -> list[tuple[int, int | None, bool]]:
    """(tokens, max_tokens, kernels) of table 2: the 1728-token rows on both CPU paths."""
    out: list[tuple[int, int | None, bool]] = []
    for n in (27, 216, 1728):
        for max_tokens in AUTHORS_MAX_TOKENS if n == 1728 else (None,):
            out.append((n, max_tokens, _kernels.ENABLED))
            if n == 1728 and max_tokens is None and _kernels.ENABLED:
                out.append((n, max_tokens, False))
    return out


def _kernel_line(device: str) -> str:
    if device == "cuda":
        return "- losses on the GPU: the PyTorch path (the numba kernel is CPU only)"
    if not _kernels.AVAILABLE:
        return "- CPU neighbour-search kernel: off (numba not installed): the PyTorch path"
    state = "on" if _kernels.ENABLED else "off (LIGHTLY_TOPO_KERNELS=0)"
    return (
        f"- CPU neighbour-search kernel (numba {_kernels.version()}): {state}; "
        "table 2 also shows the PyTorch-only path at 1728 tokens"
    )


#: Memory of the machines the sweep is judged against, GiB.
FITS_GIB = {"cpu": (("24 GiB CPU", 24),), "cuda": (("80 GiB GPU", 80), ("141 GiB GPU", 141))}


def growth_exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(value) against log(tokens), or None for fewer than 2 points."""
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(v) for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def sweep_lines(rows: list[dict[str, Any]], device: str) -> list[str]:
    """The level sweep of TopoAlignLoss: time and memory against tokens, growth exponents."""
    topo = [r for r in rows if r["loss"] == "TopoAlignLoss"]
    if not topo:
        return []
    fits = FITS_GIB[device]
    lines = [
        "",
        "## Level sweep: TopoAlignLoss against the number of tokens",
        "",
        "Batch 4, 192 channels, forward + backward. With `max_tokens=m < N` each term searches "
        "at most `m` rows of length `N` per sample or pair direction (docs/method.md, "
        '"Cost, and when to set max_tokens"); `max_tokens >= N` is the exact loss. '
        "Fits: measured peak memory below the machine's memory.",
        "",
        "| tokens | max_tokens | time (ms) | x mm | peak memory (MiB) | "
        + " | ".join(f"fits {name}" for name, _ in fits)
        + " |",
        "|---:|---:|---:|---:|---:|" + "---|" * len(fits),
    ]
    for r in topo:
        marks = " | ".join("yes" if r["peak_mib"] < gib * 1024 else "no" for _, gib in fits)
        lines.append(
            f"| {r['tokens']} | {r['max_tokens'] or '-'} | {_fmt_ms(r['time_s'])} | "
            f"{r['mm_ratio']:.1f} | {r['peak_mib']:.1f} | {marks} |"
        )
    curves: list[tuple[str, list[dict[str, Any]]]] = [
        (
            "exact (no max_tokens), N >= 216",
            [r for r in topo if r["max_tokens"] is None and r["tokens"] >= 216],
        ),
        (
            f"max_tokens={MAX_TOKENS}, N > {MAX_TOKENS}",
            [r for r in topo if r["max_tokens"] == MAX_TOKENS and r["tokens"] > MAX_TOKENS],
        ),
    ]
    lines += ["", "Growth exponents (slope of log value against log N):", ""]
    for label, curve in curves:
        t = growth_exponent([(r["tokens"], r["time_s"]) for r in curve])
        m = growth_exponent([(r["tokens"], max(r["peak_mib"], 1e-3)) for r in curve])
        if t is None or m is None:
            lines.append(f"- {label}: fewer than two points")
            continue
        lines.append(
            f"- {label}: time ~ N^{t:.2f}, peak memory ~ N^{m:.2f} "
            f"(N = {', '.join(str(r['tokens']) for r in curve)})"
        )
    by_key = {(r["tokens"], r["max_tokens"]): r["time_s"] for r in topo}
    big, small = by_key.get((13824, MAX_TOKENS)), by_key.get((1728, MAX_TOKENS))
    if big is not None and small is not None:
        lines.append(
            f"- 13824 tokens against 1728 tokens at max_tokens={MAX_TOKENS}: "
            f"{big / small:.1f}x (target at most 3x)"
        )
    exact, cheap = by_key.get((1728, None)), by_key.get((1728, SWEEP_SMALL_MAX_TOKENS))
    if exact is not None and cheap is not None:
        lines.append(
            f"- 1728 tokens, exact against max_tokens={SWEEP_SMALL_MAX_TOKENS}: "
            f"{exact / cheap:.1f}x cheaper (target at least 2x)"
        )
    return lines


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}" if seconds < 10 else f"{seconds * 1e3:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (table 1)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, nargs="+", default=[27, 216, 1728, 13824])
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the code only: 27 and 216 tokens, one run each, a 32^3 encoder step",
    )
    parser.add_argument(
        "--full-large",
        action="store_true",
        help="also run the TACO losses at more than 1728 tokens without max_tokens",
    )
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.config:
        print(json.dumps(run_config(json.loads(args.config))))
        return
    if args.dry_run:
        args.tokens, args.reps = [27, 216], 1
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    device = torch.device(args.device)
    started = time.time()
    load_start = os.getloadavg()
    losses = ["NTXentLoss", "CrossModalTripletLoss", "PseudoCorrespondenceLoss", "TopoAlignLoss"]
    rows = []
    for n in args.tokens:
        for name in losses:
            settings: list[int | None] = [None]
            if name != "NTXentLoss" and n > MAX_TOKENS:
                settings.append(MAX_TOKENS)
                if n > 1728 and not args.full_large:
                    settings.remove(None)
            if name == "TopoAlignLoss" and n > SWEEP_SMALL_MAX_TOKENS and n <= 1728:
                settings.append(SWEEP_SMALL_MAX_TOKENS)
            if args.dry_run and name == "TopoAlignLoss":
                settings.append(64)
            for max_tokens in settings:
                cfg = {
                    "device": args.device,
                    "threads": args.threads,
                    "batch": 4,
                    "channels": 192,
                    "tokens": n,
                    "loss": name,
                    "max_tokens": max_tokens,
                    "reps": args.reps,
                }
                res = run_isolated(cfg) if args.device == "cpu" else run_config(cfg)
                rows.append(res)
                print(
                    f"{n:>6} {name:<26} max_tokens={max_tokens!s:<5} "
                    f"{_fmt_ms(res['time_s']):>9} ms (cpu {_fmt_ms(res['cpu_s'])} ms, "
                    f"{res['mm_ratio']:.1f} matmuls)  "
                    f"{res['peak_mib']:9.1f} MiB",
                    flush=True,
                )

    authors = []
    if args.device == "cpu" and not args.dry_run:
        for n, max_tokens, kernels in _authors_settings():
            cfg = {
                "device": "cpu",
                "threads": 2,
                "batch": 2,
                "channels": 192,
                "tokens": n,
                "loss": "TopoAlignLoss",
                "max_tokens": max_tokens,
                "reps": 9,
                "kernels": kernels,
            }
            res = run_isolated(cfg)
            res["kernels"] = kernels
            authors.append(res)
            print(
                f"authors' setting {n} max_tokens={max_tokens} kernels={kernels}: "
                f"{_fmt_ms(res['time_s'])} ms (cpu {_fmt_ms(res['cpu_s'])} ms, "
                f"matmul {_fmt_ms(res['matmul_s'])} ms, cpu {_fmt_ms(res['matmul_cpu_s'])} ms)",
                flush=True,
            )

    stacks: dict[str, float] = {}
    if args.device == "cpu" and not args.dry_run:
        torch.set_num_threads(args.threads)
        for pairs in ("all", "random"):
            stacks[pairs] = taco_on_swin_features(device, pairs)
            mm_wall, _ = _matmul_s(device)
            stacks[f"{pairs}_mm"] = mm_wall
            print(f"stack 2x4x192x12^3 {pairs}: {_fmt_ms(stacks[pairs])} ms", flush=True)

    swin: dict[str, Any] = {}
    if args.device == "cuda" or args.dry_run:
        swin = swin_step(device, size=32 if args.dry_run else 96)
        big = 6 if args.dry_run else 24
        swin["taco_all_pairs_s"] = taco_on_swin_features(device, "all")
        swin["taco_random_pair_s"] = taco_on_swin_features(device, "random")
        swin["taco_all_pairs_27_s"] = taco_on_swin_features(device, "all", side=3)
        swin["taco_13824_s"] = taco_on_swin_features(
            device, "random", side=big, max_tokens=MAX_TOKENS
        )
        print(swin)

    load = os.getloadavg()
    lines = [
        "# TACO loss benchmark",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- commit: `{git_commit()[:12]}`",
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, device "
        + (torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"),
        _kernel_line(args.device),
        f"- load average (1, 5, 15 min) at the start: {load_start[0]:.1f}, {load_start[1]:.1f}, "
        f"{load_start[2]:.1f}; at the end: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}",
        "- time: wall-clock (ms) and process CPU time of all threads (cpu ms); on an idle "
        "machine with 2 well-used threads wall is about cpu / 2. mm = a plain fp32 "
        "(1728, 192) @ (192, 1728) matmul timed in the same process (wall, cpu); "
        "x mm = median over runs of (loss wall / wall of a matmul timed right after that "
        "run), the loss in matmul equivalents (less sensitive to this VM's drifting speed)",
        f"- wall time of the benchmark: {time.time() - started:.0f} s",
        "- loss options: defaults (k = 5, negatives = 5, max_pairs = 6), seed 0; inputs "
        "random normal maps (B, 192, D, H, W), every sample a different subject",
        "- time: forward + backward, median of the timed runs after one warm-up run; runs "
        f"slower than {SLOW_S:.0f} s are timed once (the warm-up run itself)",
        "- CPU subprocesses run with OMP_WAIT_POLICY="
        + os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
        + " (spinning OpenMP threads stall on a shared 2-core machine)",
        "- memory: "
        + (
            "CPU peak RSS during the first run minus RSS before it (ru_maxrss vs "
            "/proc/self/statm), one subprocess per configuration"
            if args.device == "cpu"
            else "torch.cuda.max_memory_allocated minus memory allocated before the run"
        ),
        "",
        f"## Batch 4, 192 channels, {args.device}"
        + (f", {args.threads} threads" if args.device == "cpu" else ""),
        "",
        "| tokens | loss | max_tokens | time (ms) | cpu (ms) | mm wall / cpu (ms) | x mm "
        "| runs | peak memory (MiB) | matched fraction |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        frac = r["stats"].get("matched_fraction")
        lines.append(
            f"| {r['tokens']} | {r['loss']} | {r['max_tokens'] or '-'} | "
            f"{_fmt_ms(r['time_s'])} | {_fmt_ms(r['cpu_s'])} | "
            f"{_fmt_ms(r['matmul_s'])} / {_fmt_ms(r['matmul_cpu_s'])} | "
            f"{r['mm_ratio']:.1f} | {r['runs']} | {r['peak_mib']:.1f} | "
            f"{'-' if frac is None else f'{frac:.2f}'} |"
        )
    lines += sweep_lines(rows, args.device)
    if authors:
        lines += [
            "",
            "## Against the authors' released implementation (2 CPU threads, batch 2, 192 channels)",
            "",
            "TopoAlignLoss = intra and inter terms, both ways, forward + backward. The authors' "
            "figures are **quoted from the issue, not measured by us** (their code has no "
            "licence and was not run).",
            "",
            "| tokens | max_tokens | CPU path | ours (ms) | ours cpu (ms) | mm wall / cpu (ms) "
            "| x mm | load | authors, quoted (ms) | speed-up (wall) | target |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in authors:
            quoted = QUOTED_AUTHORS_S[r["tokens"]]
            target = "< 64 ms (100x)" if r["tokens"] == 1728 else ""
            lines.append(
                f"| {r['tokens']} | {r['max_tokens'] or '-'} | "
                f"{'numba kernel' if r['kernels'] else 'PyTorch only'} | {_fmt_ms(r['time_s'])} | "
                f"{_fmt_ms(r['cpu_s'])} | {_fmt_ms(r['matmul_s'])} / "
                f"{_fmt_ms(r['matmul_cpu_s'])} | {r['mm_ratio']:.1f} | "
                f"{r['load_1min']:.1f} | {quoted * 1e3:.0f} | {quoted / r['time_s']:.2g}x | "
                f"{target} |"
            )
    if stacks:
        lines += [
            "",
            f"## Four modalities (cpu, {args.threads} threads)",
            "",
            "TopoAlignLoss on a stack (2 subjects, 4 modalities, 192 channels, 12^3 = 1728 "
            "tokens), forward + backward, median of 5 runs (the feature map of a SwinViT "
            "1/8 stage on 96^3 crops):",
            "",
            "| modality pairs | time (ms) | mm wall (ms) | x mm |",
            "|---|---:|---:|---:|",
        ]
        for pairs, label in (("all", "all 6 pairs"), ("random", "one random pair per subject")):
            lines.append(
                f"| {label} | {_fmt_ms(stacks[pairs])} | {_fmt_ms(stacks[pairs + '_mm'])} | "
                f"{stacks[pairs] / stacks[pairs + '_mm']:.1f} |"
            )
    if swin:
        step_s = swin["time_s"]
        lines += [
            "",
            "## TACO terms against a SwinViT encoder step (cuda)"
            + (
                " (DRY RUN: 32^3 input on this device, the figures check the code only)"
                if args.dry_run
                else ""
            ),
            "",
            f"MONAI SwinTransformer, feature size 48, 8 x 1 x 96^3 (batch 2 x 4 modalities), "
            f"bf16 autocast, forward + backward: {step_s * 1e3:.1f} ms, peak "
            f"{swin['peak_mib']:.0f} MiB; stage-2 map {swin['stage2_shape']} (1728 tokens).",
            "",
            "| TACO terms at 1728 tokens (stack 2 x 4 x 192 x 12^3, bf16 autocast) | time (ms) | % of encoder step (target < 5%) |",
            "|---|---:|---:|",
            f"| TopoAlignLoss, all 6 modality pairs | {swin['taco_all_pairs_s'] * 1e3:.1f} | "
            f"{100 * swin['taco_all_pairs_s'] / step_s:.1f} |",
            f"| TopoAlignLoss, one random pair per subject | {swin['taco_random_pair_s'] * 1e3:.1f} | "
            f"{100 * swin['taco_random_pair_s'] / step_s:.1f} |",
            f"| TopoAlignLoss, all 6 pairs at 27 tokens (3^3, the recipe's level) | "
            f"{swin['taco_all_pairs_27_s'] * 1e3:.1f} | "
            f"{100 * swin['taco_all_pairs_27_s'] / step_s:.1f} |",
            f"| TopoAlignLoss, one random pair per subject at 13824 tokens (24^3, the 1/4 "
            f"stage), max_tokens={MAX_TOKENS} | {swin['taco_13824_s'] * 1e3:.1f} | "
            f"{100 * swin['taco_13824_s'] / step_s:.1f} |",
        ]
        for r in rows:
            if r["tokens"] == 1728 and r["loss"] == "TopoAlignLoss":
                lines.append(
                    f"| TopoAlignLoss, batch 4 two modalities, max_tokens={r['max_tokens']} | "
                    f"{r['time_s'] * 1e3:.1f} | {100 * r['time_s'] / step_s:.1f} |"
                )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        payload = {
            "rows": rows,
            "authors": authors,
            "stacks": stacks,
            "swin": swin,
            "argv": sys.argv,
        }
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
