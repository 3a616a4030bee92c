"""Step time and peak memory of every pretraining method on one backbone, batch and data.

Measures, for the bare backbone (forward + backward) and every registered method, the time
of a training step (loss, backward, AdamW step) on the same pre-made batch of synthetic
brains, the peak memory of the step, and the ratio of both to ``simclr``. Then it runs the
real data pipeline of ``taco`` and ``simclr`` (per-item CPU transforms, and the batched
device augmentation) and splits each step into data wait and compute.

Times are measured in one process with the methods interleaved (one step of each per round;
medians), so load changes on a shared machine hit all methods alike. Memory: on the CPU each
method runs once more in its own subprocess (peak RSS increment of a step); on the GPU
``torch.cuda.max_memory_allocated`` around each step, with bf16 autocast.

Usage:
    python benchmarks/bench_methods.py --out benchmarks/results/methods_cpu.md
    python benchmarks/bench_methods.py --device cuda --out benchmarks/results/methods_gpu.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METHODS = (
    "simclr",
    "byol",
    "mae",
    "taco",
    "simclr+topo",
    "byol+topo",
    "mae+topo",
    "xmodal-simclr",
)

PRESETS: dict[str, dict[str, Any]] = {
    # 2 subjects x 4 modalities x 32^3, small ResEnc: the CPU configuration.
    "cpu": {
        "backbone": "resenc",
        "backbone_kwargs": {"features": [8, 16, 32, 64], "blocks_per_stage": 1},
        "crop": 32,
        "volume": 32,
        "batch": 2,
        "modalities": ["t1", "t2", "pd", "flair"],
        "level": 2,
        "mask_patch": 8,
        "warmup": 1,
        "steps": 5,
        "pipeline_steps": 3,
    },
    # The smallest run that goes through every code path (device_check.sh --dry-run).
    "dry": {
        "backbone": "resenc",
        "backbone_kwargs": {"features": [4, 8, 16, 32], "blocks_per_stage": 1},
        "crop": 16,
        "volume": 16,
        "batch": 2,
        "modalities": ["t1", "t2"],
        "level": 1,
        "mask_patch": 4,
        "warmup": 0,
        "steps": 1,
        "pipeline_steps": 1,
    },
    # 2 subjects x 4 modalities x 96^3, Swin-UNETR feature 48: the paper's encoder.
    "cuda": {
        "backbone": "swin",
        "backbone_kwargs": {"feature_size": 48},
        "crop": 96,
        "volume": 96,
        "batch": 2,
        "modalities": ["t1", "t2", "pd", "flair"],
        "level": -1,
        "mask_patch": 16,
        "warmup": 2,
        "steps": 5,
        "pipeline_steps": 6,
    },
}


def config_for(method: str, preset: dict[str, Any], device: str) -> Any:
    from lightly_topo.methods.config import build_config

    return build_config(
        {
            "method": method,
            "model": {"backbone": preset["backbone"], "backbone_kwargs": preset["backbone_kwargs"]},
            "data": {
                "synthetic_subjects": 4,
                "synthetic_size": preset["volume"],
                "crop_size": preset["crop"],
                "batch_size": preset["batch"],
                "modalities": preset["modalities"],
                "probe_label": None,
            },
            "loss": {"mask_patch": preset["mask_patch"]},
            "topo": {"level": preset["level"]},
            "trainer": {
                "max_steps": 1000,
                "accelerator": "gpu" if device == "cuda" else "cpu",
                "progress": False,
            },
        }
    )


def make_batch(method_cls: Any, config: Any, table: Any, device: torch.device) -> dict[str, Any]:
    """One batch of the method's view kind from the real transforms, on ``device``."""
    from lightly_topo.methods.train import PretrainData

    data = PretrainData(
        config,
        table,
        method_cls.view_kind,
        method_cls.needs_pairs,
        None,
        with_foreground=method_cls.uses_foreground,
    )
    batch = next(iter(data.train_dataloader()))
    return to_device(batch, device)


def to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    return value


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def prepare(name: str, preset: dict[str, Any], device: torch.device) -> tuple[Any, dict[str, Any]]:
    """A function running one training step of ``name`` (a method or ``"backbone"``) on a
    fixed batch, and what describes it."""
    from lightly_topo import registry
    from lightly_topo.methods.components import build_config_backbone
    from lightly_topo.methods.train import load_subjects

    torch.manual_seed(0)
    method = "taco" if name == "backbone" else name
    config = config_for(method, preset, device.type)
    table = load_subjects(config)
    method_cls = registry.get("method", method)
    batch = make_batch(method_cls, config, table, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    if name == "backbone":
        model: Any = build_config_backbone(config, 1).to(device)
        volumes = torch.cat([batch["image_a"], batch["image_b"]])

        def step() -> None:
            with autocast:
                features = model.forward_features(volumes)
                loss = sum(f.float().mean() for f in features)
            loss.backward()  # type: ignore[union-attr]
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        encoded = int(volumes.shape[0])
    else:
        model = method_cls(config, table.modality_names).to(device)

        def step() -> None:
            with autocast:
                loss, _ = model.compute_loss(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            model.after_optimizer_step()

        encoded = encoded_volumes(method_cls, batch)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    info = {
        "name": name,
        "volumes": encoded,
        "params_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
    }
    return step, info


def memory(name: str, preset: dict[str, Any], device: torch.device) -> float:
    """Peak memory increment (MiB) of one step over the memory before it (after warm-up).

    CPU: peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) of this process, run
    in a fresh process per method; GPU: ``torch.cuda.max_memory_allocated``.
    """
    step, _ = prepare(name, preset, device)
    step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    # Reset the peak RSS (VmHWM) so that it measures this step alone.
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")
    base_mib = _status_mib("VmRSS")
    step()
    return _status_mib("VmHWM") - base_mib


def interleaved(
    names: list[str], preset: dict[str, Any], device: torch.device
) -> list[dict[str, Any]]:
    """Step times of every method, measured round-robin (one step of each per round), so a
    change of machine load hits all methods alike; median over the rounds of the wall time
    and of the process CPU time. GPU: also the peak memory increment of each step."""
    prepared = [prepare(name, preset, device) for name in names]
    for step, _ in prepared:
        for _ in range(preset["warmup"]):
            step()
    sync(device)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    mem: dict[str, float] = {n: 0.0 for n in names}
    for _ in range(preset["steps"]):
        for step, info in prepared:
            name = info["name"]
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            sync(device)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            if device.type == "cuda":
                peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
                mem[name] = max(mem[name], peak)
    rows = []
    for _, info in prepared:
        name = info["name"]
        rows.append(
            {
                **info,
                "step_s": sorted(wall[name])[len(wall[name]) // 2],
                "cpu_s": sorted(cpu[name])[len(cpu[name]) // 2],
                "step_mem_mib": mem[name],
            }
        )
    return rows


def encoded_volumes(method_cls: Any, batch: dict[str, Any]) -> int:
    """Single-modality volumes the encoder sees per step (shared encoder)."""
    if method_cls.view_kind == "pair":
        return int(batch["image_a"].shape[0] * 2)
    return int(sum(int(v["mask"].sum()) for v in batch["views"]))


def pipeline(
    method: str, preset: dict[str, Any], device: torch.device, device_augment: bool, workers: int
) -> dict[str, Any]:
    """Data wait vs compute over the real loader (per-item transforms or device augmentation)."""
    from lightly_topo import registry
    from lightly_topo.methods.train import PretrainData, device_augmenter, load_subjects

    config = config_for(method, preset, device.type)
    config.trainer.device_augment = device_augment
    config.data.num_workers = workers
    table = load_subjects(config)
    for index in range(len(table.dataset)):
        table.dataset[index]  # generate the synthetic subjects before timing
    method_cls = registry.get("method", method)
    model = method_cls(config, table.modality_names).to(device)
    augment = device_augmenter(method_cls.view_kind, config) if device_augment else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = PretrainData(
        config,
        table,
        method_cls.view_kind,
        method_cls.needs_pairs,
        None,
        with_foreground=method_cls.uses_foreground,
    )
    loader = iter(data.train_dataloader())
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    waits, steps = [], []
    for index in range(preset["pipeline_steps"] + 1):
        start = time.perf_counter()
        batch = to_device(next(loader), device)
        if augment is not None:
            batch = augment(batch, with_foreground=method_cls.uses_foreground)
        sync(device)
        ready = time.perf_counter()
        with autocast:
            loss, _ = model.compute_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if index:  # the first batch pays worker start-up
            waits.append(ready - start)
            steps.append(time.perf_counter() - ready)
    wait = sum(waits) / len(waits)
    step = sum(steps) / len(steps)
    return {
        "method": method,
        "path": "device (BatchAugment3D)" if device_augment else f"per-item CPU, {workers} workers",
        "data_wait_s": wait,
        "step_s": step,
        "wait_fraction": wait / (wait + step),
    }


def machine(device: torch.device) -> str:
    name = platform.processor() or platform.machine()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    load = f", load average {os.getloadavg()[0]:.1f}" if device.type == "cpu" else ""
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs{load}, torch {torch.__version__}, "
        f"device {device.type} ({name})"
    )


def run_child(name: str, device: str, preset: str | None = None) -> dict[str, Any]:
    """Measure one method in a fresh process (CPU peak RSS is per process)."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            name,
            "--device",
            device,
            "--preset",
            preset or device,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def table_md(
    rows: list[dict[str, Any]],
    pipes: list[dict[str, Any]],
    device: torch.device,
    preset: dict[str, Any],
    command: str,
) -> str:
    simclr = next(r for r in rows if r["name"] == "simclr")
    mem_label = (
        "step peak allocated increment (MiB)"
        if device.type == "cuda"
        else "step peak RSS increment (MiB)"
    )
    lines = [
        "# Pretraining methods: step time and memory",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine(device)}",
        f"- command: `{command}`",
        f"- backbone: {preset['backbone']} {preset['backbone_kwargs']}; batch {preset['batch']} "
        f"subjects x {len(preset['modalities'])} modalities x {preset['crop']}^3; "
        f"{'bf16 autocast' if device.type == 'cuda' else 'fp32'}",
        "- step = loss + backward + AdamW step on one pre-made batch (no data loading); "
        f"median of {preset['steps']} rounds after {preset['warmup']} warm-up, the methods "
        "interleaved (one step of each per round) so that load changes hit all alike; "
        "`cpu` = process CPU time of the step",
        "- `volumes` = single-modality volumes through the shared encoder per step: simclr and "
        "byol encode every modality of both views, taco and xmodal-simclr one pair per subject",
        "",
        f"| method | step (s) | x simclr | cpu (s) | {mem_label} | x simclr | volumes | "
        "step / volume (s) | per volume x simclr (goal for taco, +topo: at most 1.10) | "
        "params (M) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['step_s']:.3f} | {r['step_s'] / simclr['step_s']:.2f} | "
            f"{r['cpu_s']:.3f} | {r['step_mem_mib']:.0f} | "
            f"{r['step_mem_mib'] / max(simclr['step_mem_mib'], 1e-9):.2f} | {r['volumes']} | "
            f"{r['step_s'] / r['volumes']:.4f} | "
            f"{(r['step_s'] / r['volumes']) / (simclr['step_s'] / simclr['volumes']):.2f} | "
            f"{r['params_m']:.2f} |"
        )
    lines += [
        "",
        "Data pipeline (real loader; wait = next batch + transfer + device augmentation, "
        "step = compute):",
        "",
        "| method | data path | data wait (s) | step (s) | wait / (wait + step) |",
        "|---|---|---|---|---|",
    ]
    for p in pipes:
        lines.append(
            f"| {p['method']} | {p['path']} | {p['data_wait_s']:.3f} | {p['step_s']:.3f} | "
            f"{p['wait_fraction']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file (JSON next to it)")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--workers", type=int, default=None, help="loader workers (per-item path)")
    parser.add_argument(
        "--preset", choices=tuple(PRESETS), default=None, help="default: the device's preset"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    preset = PRESETS[args.preset or args.device]
    torch.set_num_threads(
        max(1, min(2, os.cpu_count() or 1)) if args.device == "cpu" else torch.get_num_threads()
    )
    if args.child:
        print(json.dumps({"step_mem_mib": memory(args.child, preset, device)}))
        return 0
    names = ["backbone", *[m for m in METHODS if m in args.methods]]
    if "simclr" not in names:
        names.insert(1, "simclr")
    rows = interleaved(names, preset, device)
    if device.type == "cpu":
        for row in rows:
            row["step_mem_mib"] = run_child(row["name"], args.device, args.preset)["step_mem_mib"]
    for row in rows:
        print(f"{row['name']}: {row['step_s']:.3f} s, {row['step_mem_mib']:.0f} MiB", flush=True)
    workers = args.workers if args.workers is not None else (0 if device.type == "cpu" else 8)
    pipes = [
        pipeline("taco", preset, device, device_augment=False, workers=workers),
        pipeline("taco", preset, device, device_augment=True, workers=0),
        pipeline("simclr", preset, device, device_augment=True, workers=0),
    ]
    command = "python benchmarks/bench_methods.py " + " ".join(sys.argv[1:])
    text = table_md(rows, pipes, device, preset, command)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(
            json.dumps(
                {
                    "machine": machine(device),
                    "preset": preset,
                    "methods": rows,
                    "pipeline": pipes,
                    "command": command,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
