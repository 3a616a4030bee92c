"""Throughput of MultiModalVolumeDataset: cold (decoding NIfTI) vs cached (memory-mapped) epochs.

Writes a folder of synthetic NIfTI subjects (smooth random volumes inside an ellipsoid, int16,
gzip) into a temporary folder, then times full passes over the dataset:

* ``no cache``: every item decodes its NIfTI files and preprocesses them;
* ``cold``: first epoch with an empty cache folder (decode, preprocess, write the cache);
* ``cached``: later epochs (content hashes from the index, arrays memory-mapped).

It also times the real ``tcga_lgg_buda2019`` set where ``../shared/data`` holds it.

Usage::

    python benchmarks/bench_dataset.py --out benchmarks/results/dataset_cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightly_topo.data import ModalityFile, MultiModalVolumeDataset, Subject, read_subjects  # noqa: E402

MODALITIES = ("t1", "t1ce", "t2", "flair")


def write_subjects(root: Path, n: int, size: int, n_mod: int, seed: int) -> list[Subject]:
    """``n`` subjects with ``n_mod`` co-registered int16 volumes of ``size``^3 voxels each."""
    gen = torch.Generator().manual_seed(seed)
    axis = torch.linspace(-1, 1, size)
    zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
    brain = (xx / 0.8) ** 2 + (yy / 0.9) ** 2 + (zz / 0.75) ** 2 < 1
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    subjects = []
    for i in range(n):
        images = {}
        for m in MODALITIES[:n_mod]:
            noise = torch.rand((1, 1, 12, 12, 12), generator=gen)
            smooth = F.interpolate(noise, size=(size,) * 3, mode="trilinear", align_corners=True)[
                0, 0
            ]
            vol = (300 + 700 * smooth) * brain
            path = root / f"sub{i:03d}" / f"sub{i:03d}_{m}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(vol.numpy().astype(np.int16), affine), str(path))
            images[m] = ModalityFile(m, path)
        label = (brain & (torch.rand((size,) * 3, generator=gen) > 0.99)).numpy().astype(np.uint8)
        seg = root / f"sub{i:03d}" / f"sub{i:03d}_seg.nii.gz"
        nib.save(nib.Nifti1Image(label, affine), str(seg))
        subjects.append(Subject(f"sub{i:03d}", images, label_map=seg, labels={"age": 20 + i}))
    return subjects


def epoch(ds: MultiModalVolumeDataset) -> float:
    """Seconds for one pass over every item (values touched, so lazy reads count)."""
    start = time.perf_counter()
    total = 0.0
    for i in range(len(ds)):
        item = ds[i]
        for img in item["images"].values():
            total += float(img[0, 0, 0, 0])
    return time.perf_counter() - start


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(
    name: str, subjects: list[Subject], cache_root: Path, epochs: int, **kwargs
) -> list[dict]:
    rows = []
    n = len(subjects)
    ds = MultiModalVolumeDataset(subjects, **kwargs)
    t = epoch(ds)
    rows.append(
        {"data": name, "mode": "no cache", "subjects": n, "seconds": t, "subjects_per_s": n / t}
    )
    cache = cache_root / name
    shutil.rmtree(cache, ignore_errors=True)
    ds = MultiModalVolumeDataset(subjects, cache_dir=cache, **kwargs)
    t = epoch(ds)
    rows.append(
        {
            "data": name,
            "mode": "cold (1st epoch, writes cache)",
            "subjects": n,
            "seconds": t,
            "subjects_per_s": n / t,
        }
    )
    times = [epoch(ds) for _ in range(epochs)]
    t = float(np.mean(times))
    rows.append(
        {
            "data": name,
            "mode": f"cached (mean of {epochs} epochs)",
            "subjects": n,
            "seconds": t,
            "subjects_per_s": n / t,
        }
    )
    size = sum(p.stat().st_size for p in cache.rglob("*.npy")) / 2**20
    rows[-1]["cache_mib"] = size
    rows[-1]["rss_mib"] = rss_mib()
    return rows


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": "cpu",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=None, help="Markdown result file (JSON beside it)"
    )
    parser.add_argument("--subjects", type=int, default=16)
    parser.add_argument("--size", type=int, default=96, help="edge of the synthetic cubes (voxels)")
    parser.add_argument("--modalities", type=int, default=4, choices=range(1, 5))
    parser.add_argument("--epochs", type=int, default=3, help="cached epochs to average")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows: list[dict] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_dataset_") as tmp:
        tmp_path = Path(tmp)
        subjects = write_subjects(
            tmp_path / "nifti", args.subjects, args.size, args.modalities, args.seed
        )
        name = f"synthetic {args.subjects}x{args.modalities}x{args.size}^3"
        rows += measure(name, subjects, tmp_path / "cache", args.epochs)
        lgg = args.shared_data / "tcga_lgg_buda2019"
        if lgg.is_dir():
            rows += measure(
                "tcga_lgg_buda2019 (70 subj, 128x128x20-88)",
                read_subjects(lgg),
                tmp_path / "cache",
                args.epochs,
            )

    info = machine()
    info["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    lines = [
        "# MultiModalVolumeDataset throughput (CPU)",
        "",
        f"* date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"* machine: {info['platform']}, {info['cpu']}, {info['cpu_count']} CPUs, "
        f"torch {info['torch']} ({info['torch_threads']} threads), Python {info['python']}",
        f"* command: `{command}`",
        f"* 1-minute load average before / after: {info['load_average_before_after'][0]} / "
        f"{info['load_average_before_after'][1]} (other jobs shared the machine when this is above the CPU count)",
        "* single process (no DataLoader workers); default preprocessing (RAS+, z-score, float16 cache);"
        " 'subjects/s' counts full subjects (all modalities + label map)",
        "",
        "| data | mode | subjects | seconds | subjects/s | cache MiB | RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cache = f"{r['cache_mib']:.1f}" if "cache_mib" in r else ""
        rss = f"{r['rss_mib']:.0f}" if "rss_mib" in r else ""
        lines.append(
            f"| {r['data']} | {r['mode']} | {r['subjects']} | {r['seconds']:.2f} | {r['subjects_per_s']:.1f} | {cache} | {rss} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(
            json.dumps({"machine": info, "command": command, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    main()
