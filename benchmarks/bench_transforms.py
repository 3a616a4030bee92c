"""Benchmark of the 3D transforms: per-subject CPU path vs torchio, and the batched path.

CPU run (one thread, volumes per second per core)::

    python benchmarks/bench_transforms.py --out benchmarks/results/transforms_cpu.md

GPU run (batched path only, 8 x 4 x 160^3 -> 96^3, median ms)::

    python benchmarks/bench_transforms.py --device cuda --out benchmarks/results/transforms_cuda.md

Pipelines (the same transforms and ranges in every implementation):

* ``crop-flip``: random crop to 96^3 and a flip of each axis with p = 0.5 (torchio: a
  ``UniformSampler`` patch, then ``RandomFlip``).
* ``affine``: ``full`` without the elastic deformation.
* ``full``: random affine (+-15 degrees, scale 1 +- 0.1) and elastic deformation (7
  control points, 4 voxels) of the whole volume, random crop to 96^3, flips (p = 0.5),
  then gamma (|log gamma| <= 0.3), bias field (order 3, +-0.5), Gaussian noise (std up to
  0.1) and Gaussian blur (sigma 0.5 to 1), each always applied (torchio: ``RandomAffine``,
  ``RandomElasticDeformation``, ``UniformSampler``, ``RandomFlip``, ``RandomGamma``,
  ``RandomBiasField``, ``RandomNoise``, ``RandomBlur``). Our CPU path composes the affine
  map, the elastic field and the crop into one grid and resamples only the 96^3 output;
  torchio resamples the whole input volume, then crops.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightly_topo.benchmark.provenance import git_commit
from lightly_topo.transforms import (
    Augment3D,
    BatchAugment3D,
    RandomAffine3D,
    RandomBiasField3D,
    RandomCrop3D,
    RandomElastic3D,
    RandomFlip3D,
    RandomGamma3D,
    RandomGaussianBlur3D,
    RandomGaussianNoise3D,
    matched_tokens,
)
from lightly_topo.transforms.view import ViewTransform3D

NAMES = ("t1", "t1ce", "t2", "flair")


KINDS = ("crop-flip", "affine", "full")


def ours(kind: str, size: int) -> dict:
    if kind == "crop-flip":
        return {"spatial": [RandomCrop3D(size), RandomFlip3D(p=0.5)]}
    elastic = (
        [RandomElastic3D(num_control_points=7, max_displacement=4.0)] if kind == "full" else []
    )
    return {
        "spatial": [
            RandomAffine3D(degrees=15, scale=0.1),
            *elastic,
            RandomCrop3D(size),
            RandomFlip3D(p=0.5),
        ],
        "intensity": [
            RandomGamma3D(0.3, p=1.0),
            RandomBiasField3D(0.5, 3, p=1.0),
            RandomGaussianNoise3D((0.0, 0.1), p=1.0),
            RandomGaussianBlur3D((0.5, 1.0), p=1.0),
        ],
    }


def torchio_pipeline(kind: str, size: int) -> Callable:
    import torchio as tio

    sampler = tio.UniformSampler(size)
    if kind == "crop-flip":
        before, after = [], [tio.RandomFlip(axes=(0, 1, 2), flip_probability=0.5)]
    else:
        before = [tio.RandomAffine(scales=0.1, degrees=15)]
        if kind == "full":
            before.append(tio.RandomElasticDeformation(num_control_points=7, max_displacement=4.0))
        after = [
            tio.RandomFlip(axes=(0, 1, 2), flip_probability=0.5),
            tio.RandomGamma(log_gamma=0.3),
            tio.RandomBiasField(coefficients=0.5, order=3),
            tio.RandomNoise(std=(0.0, 0.1)),
            tio.RandomBlur(std=(0.5, 1.0)),
        ]
    pre, post = tio.Compose(before), tio.Compose(after)

    def run(subject: tio.Subject) -> tio.Subject:
        subject = pre(subject) if before else subject
        patch = next(iter(sampler(subject, num_patches=1)))
        return post(patch)

    return run


def timed(
    fn: Callable[[int], object], repeats: int, sync: Callable[[], None] = lambda: None
) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of ``repeats`` calls after one warm-up call."""
    fn(-1)
    sync()
    wall, cpu = [], []
    for i in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(i)
        sync()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(f"  {statistics.median(wall) * 1000:.1f} ms wall", file=sys.stderr, flush=True)
    return wall, cpu


def machine(device: str) -> dict:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "platform": platform.platform(),
        "cpu": name,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
    }
    if device == "cuda":
        info["device_name"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--input-size", type=int, default=160)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--torchio-repeats", type=int, default=2, help="torchio is slow: fewer repeats"
    )
    parser.add_argument("--skip-torchio", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available")
    s, n = args.input_size, args.size
    rows: list[dict] = []
    gen = torch.Generator().manual_seed(0)

    if args.device == "cpu":
        torch.set_num_threads(1)
        try:
            import SimpleITK as sitk

            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        except ImportError:
            pass
        volumes = [torch.randn(1, s, s, s, generator=gen) for _ in NAMES]
        item = {
            "subject_id": "bench",
            "images": dict(zip(NAMES, volumes)),
            "mask": torch.ones(len(NAMES), dtype=torch.bool),
            "modality_names": NAMES,
            "label_map": None,
        }
        for kind in KINDS:
            view = ViewTransform3D(Augment3D(**ours(kind, n)))
            t = timed(lambda i, view=view: view(item, generator=i), args.repeats)
            rows.append(
                {
                    "pipeline": kind,
                    "implementation": "lightly_topo CPU path (ViewTransform3D)",
                    "batch": 1,
                    "times_s": t[0],
                    "cpu_s": t[1],
                }
            )
            if not args.skip_torchio:
                import torchio as tio

                subject = tio.Subject(
                    {k: tio.ScalarImage(tensor=v) for k, v in zip(NAMES, volumes)}
                )
                run = torchio_pipeline(kind, n)
                t = timed(lambda i, run=run, subject=subject: run(subject), args.torchio_repeats)
                rows.append(
                    {
                        "pipeline": kind,
                        "implementation": f"torchio {tio.__version__} Compose",
                        "batch": 1,
                        "times_s": t[0],
                        "cpu_s": t[1],
                    }
                )
        batch_image = torch.randn(args.batch, len(NAMES), s, s, s, generator=gen)
        for kind in KINDS:
            aug = BatchAugment3D(**ours(kind, n))
            t = timed(lambda i, aug=aug: aug(batch_image, generator=i), max(2, args.repeats // 2))
            rows.append(
                {
                    "pipeline": kind,
                    "implementation": "lightly_topo BatchAugment3D on CPU",
                    "batch": args.batch,
                    "times_s": t[0],
                    "cpu_s": t[1],
                }
            )
        del batch_image
    else:
        dev = torch.device("cuda")
        batch_image = torch.randn(args.batch, len(NAMES), s, s, s, device=dev)
        for kind in KINDS:
            aug = BatchAugment3D(**ours(kind, n))
            torch.cuda.reset_peak_memory_stats()
            t = timed(lambda i, aug=aug: aug(batch_image, generator=i), 20, torch.cuda.synchronize)
            rows.append(
                {
                    "pipeline": kind,
                    "implementation": "lightly_topo BatchAugment3D on CUDA",
                    "batch": args.batch,
                    "times_s": t[0],
                    "cpu_s": t[1],
                    "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
                }
            )
        del batch_image

    # matched_tokens between two views of n^3 at several strides.
    dev = torch.device(args.device)
    spatial = Augment3D(**{"spatial": ours("full", n)["spatial"]}).spatial
    shape = (s, s, s)
    grids_a = torch.stack(
        [spatial.sample_params(shape, generator=i).grid() for i in range(args.batch)]
    ).to(dev)
    grids_b = torch.stack(
        [spatial.sample_params(shape, generator=100 + i).grid() for i in range(args.batch)]
    ).to(dev)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    for stride in [k for k in (16, 8, 4, 2) if n % k == 0]:
        t = timed(lambda i, stride=stride: matched_tokens(grids_a, grids_b, stride), 3, sync)
        rows.append(
            {
                "pipeline": f"matched_tokens stride {stride}",
                "implementation": f"lightly_topo on {args.device}",
                "batch": args.batch,
                "times_s": t[0],
                "cpu_s": t[1],
            }
        )

    for row in rows:
        med = statistics.median(row["times_s"])
        row["median_ms"] = 1000 * med
        row["median_cpu_ms"] = 1000 * statistics.median(row["cpu_s"])
        basis = row["median_cpu_ms"] if args.device == "cpu" else row["median_ms"]
        row["volumes_per_s"] = 1000 * row["batch"] / basis
    info = machine(args.device)
    threads = "1 thread" if args.device == "cpu" else "GPU"
    lines = [
        f"# Transform benchmark ({args.device})",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"- commit: `{git_commit()[:12]}`",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- machine: {info['platform']}, {info['cpu']}, {info['cpu_count']} CPUs"
        + (f", {info.get('device_name')}" if args.device == "cuda" else "")
        + f"; torch {info['torch']}; {threads}",
        f"- input: {len(NAMES)} modalities of {s}^3 float32 -> {n}^3 (random data; timings do not depend on content)",
        "- matched_tokens rows: two grids per subject (full spatial pipeline) of "
        f"{n}^3, a batch of {args.batch}",
        f"- load average while running (1, 5, 15 min): {os.getloadavg()}",
        "- on the CPU, `volumes / s per core` uses the process CPU time (one thread), which"
        " is robust to other jobs sharing the machine; wall-clock medians are shown too",
        "",
        "| pipeline | implementation | batch | median wall ms per call | median CPU ms per call | volumes / s"
        + (" per core" if args.device == "cpu" else "")
        + " | peak GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        mem = f"{row['max_memory_gib']:.2f}" if "max_memory_gib" in row else "-"
        vps = f"{row['volumes_per_s']:.2f}" if not row["pipeline"].startswith("matched") else "-"
        lines.append(
            f"| {row['pipeline']} | {row['implementation']} | {row['batch']} | {row['median_ms']:.1f} "
            f"| {row['median_cpu_ms']:.1f} | {vps} | {mem} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(
            json.dumps(
                {"machine": info, "args": vars(args) | {"out": str(args.out)}, "rows": rows},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
