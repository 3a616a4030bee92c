"""``lightly-topo summary``: what a dataset holds, subject by subject.

On the embedded synthetic default (``--data synthetic``) it generates a few subjects; on a
folder or manifest it reads the subjects with :func:`lightly_topo.data.read_subjects` and
decodes each through :class:`lightly_topo.data.MultiModalVolumeDataset`.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="print the modalities, shapes and labels of a dataset (default: synthetic brains)",
    )
    parser.add_argument(
        "--data", default="synthetic", help="'synthetic' (default) or a folder / manifest file"
    )
    parser.add_argument("--layout", default="auto", help="layout of --data (default: auto)")
    parser.add_argument("--subjects", type=int, default=6, help="subjects to show (default 6)")
    parser.add_argument("--size", type=int, default=64, help="synthetic volume size (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic seed (default 0)")
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks on error")
    parser.set_defaults(func=run)


def _format_labels(labels: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in labels.items()) or "-"


def run(args: argparse.Namespace) -> int:
    from torch.utils.data import Dataset

    from lightly_topo.data import MultiModalVolumeDataset, SyntheticBrains, read_subjects

    started = time.perf_counter()
    dataset: Dataset[Any]
    if args.data == "synthetic":
        dataset = SyntheticBrains(args.subjects, size=args.size, seed=args.seed)
        print(f"synthetic brains: {args.subjects} subjects, {args.size}^3 voxels, seed {args.seed}")
        total = args.subjects
    else:
        subjects = read_subjects(Path(args.data), layout=args.layout)
        total = len(subjects)
        modality_counts = Counter(name for subject in subjects for name in subject.modalities)
        print(f"{args.data}: {total} subjects")
        print("modalities: " + ", ".join(f"{k} ({v})" for k, v in sorted(modality_counts.items())))
        dataset = MultiModalVolumeDataset(subjects[: args.subjects])
    shown = min(args.subjects, total)
    header = f"{'subject':<24} {'modalities':<28} {'shape':<16} {'label map':<22} labels"
    print(header)
    print("-" * len(header))
    for index in range(shown):
        item = dataset[index]
        names = ",".join(item["images"])
        first = next(iter(item["images"].values()))
        shape = "x".join(str(s) for s in first.shape[1:])
        label_map = item["label_map"]
        if label_map is None:
            seg = "-"
        else:
            ids = sorted(int(v) for v in label_map.unique())
            seg = "ids " + ",".join(str(v) for v in ids)
        print(
            f"{item['subject_id']:<24} {names:<28} {shape:<16} {seg:<22} "
            f"{_format_labels(item['labels'])}"
        )
    elapsed = time.perf_counter() - started
    print(f"{shown} of {total} subjects in {elapsed:.1f} s")
    return 0
