"""``lightly-topo finetune``: segmentation or classification from a pretrained checkpoint.

Loads the encoder of a checkpoint (:func:`lightly_topo.eval.tasks.load_encoder`), trains
the task on the training subjects of a dataset and scores the test subjects; writes the
:class:`~lightly_topo.eval.tasks.TaskResult` (per-subject metrics, split, config, history)
with provenance as JSON.

The dataset arguments and the encoder loading are shared with ``lightly-topo evaluate``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``finetune`` and ``evaluate``."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="encoder checkpoint (OUT/encoder/encoder.pt of pretrain)",
    )
    parser.add_argument(
        "--task", required=True, choices=("segmentation", "classification"), help="the task"
    )
    parser.add_argument(
        "--data",
        default="synthetic",
        help="dataset folder (BraTS, Decathlon, BIDS, LGG, ...) or 'synthetic' (default)",
    )
    parser.add_argument("--out", required=True, help="JSON file the result is written to")
    parser.add_argument(
        "--from-scratch",
        action="store_true",
        help="use the checkpoint's architecture with fresh weights (the from-scratch baseline)",
    )
    parser.add_argument("--label", default="lesion", help="subject label to classify")
    parser.add_argument(
        "--mode", default="linear", choices=("linear", "finetune"), help="classification mode"
    )
    parser.add_argument("--steps", type=int, default=50, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=2, help="subjects / patches per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of split, init and batches")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="share of test subjects")
    parser.add_argument(
        "--patch-size", type=int, default=32, help="segmentation patch / sliding-window edge"
    )
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="classification: centre crop / pad volumes to this edge (needed for real data)",
    )
    parser.add_argument(
        "--whole-lesion",
        action="store_true",
        help="segmentation: merge every label above 0 into one foreground class",
    )
    parser.add_argument(
        "--split",
        default=None,
        help="JSON split file (lightly_topo.eval.save_splits); --fold picks",
    )
    parser.add_argument("--fold", type=int, default=0, help="which split of --split")
    parser.add_argument("--spacing", type=float, default=None, help="resample real data (mm)")
    parser.add_argument("--synthetic-subjects", type=int, default=20, help="synthetic subjects")
    parser.add_argument("--synthetic-size", type=int, default=32, help="synthetic volume edge")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks on error")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="train segmentation or classification from a pretrained checkpoint; writes JSON",
        description=(
            "Fine-tune a segmentation decoder, or a linear probe / the whole encoder for "
            "classification, from a pretrained encoder checkpoint on a dataset's training "
            "subjects, score the test subjects and write the result as JSON (--out)."
        ),
    )
    add_dataset_arguments(parser)
    parser.set_defaults(func=run)


def device_of(args: argparse.Namespace) -> str:
    import torch

    if args.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU; use --device cpu or auto")
    return str(args.device)


def load_dataset(args: argparse.Namespace, modalities: tuple[str, ...]) -> Any:
    """The dataset of ``--data`` (synthetic over the checkpoint's ``modalities``, or a folder)."""
    from lightly_topo.benchmark.datasets import CachedDataset

    if args.data == "synthetic":
        from lightly_topo.data.synthetic import SyntheticBrains

        return CachedDataset(
            SyntheticBrains(
                args.synthetic_subjects,
                size=args.synthetic_size,
                modalities=modalities,
                seed=args.seed,
                id_prefix="eval",
            ),
            whole_lesion=args.whole_lesion,
        )
    from lightly_topo.data import MultiModalVolumeDataset, read_subjects

    path = Path(args.data).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"--data {path} does not exist: pass a dataset folder or 'synthetic'"
        )
    dataset = MultiModalVolumeDataset(
        read_subjects(path), spacing=args.spacing, crop_foreground=True
    )
    return CachedDataset(dataset, whole_lesion=args.whole_lesion)


def prepare(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, str]:
    """Encoder, dataset, task config, split (or ``None``) and the encoder's init label."""
    from lightly_topo.checkpoint import read_metadata
    from lightly_topo.data.modalities import normalize_modality
    from lightly_topo.eval.classification import ClassificationConfig
    from lightly_topo.eval.segmentation import SegmentationConfig
    from lightly_topo.eval.splits import load_splits
    from lightly_topo.eval.tasks import load_encoder, scratch_encoder_like

    device = device_of(args)
    metadata = read_metadata(args.checkpoint)
    saved = tuple(
        normalize_modality(m, source=str(args.checkpoint)) for m in metadata.get("modalities") or ()
    )
    if args.data == "synthetic" and not saved:
        raise ValueError(
            f"--checkpoint {args.checkpoint} records no modalities; with --data synthetic the "
            "modalities come from the checkpoint: pass a dataset folder instead"
        )
    dataset = load_dataset(args, saved)
    encoder = load_encoder(args.checkpoint, dataset.modality_names, map_location=device)
    init = "pretrained"
    if args.from_scratch:
        encoder = scratch_encoder_like(encoder, args.seed)
        init = "scratch"
    common = {
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "test_fraction": args.test_fraction,
        "device": device,
    }
    config: Any
    if args.task == "segmentation":
        config = SegmentationConfig(**common, patch_size=(args.patch_size,) * 3)
    else:
        size = None if args.input_size is None else (args.input_size,) * 3
        config = ClassificationConfig(
            **common, label_key=args.label, mode=args.mode, input_size=size
        )
    split = None
    if args.split is not None:
        splits = load_splits(args.split)
        if not 0 <= args.fold < len(splits):
            raise ValueError(f"--fold {args.fold}: {args.split} holds {len(splits)} splits")
        split = splits[args.fold]
    return encoder, dataset, config, split, init


def write_result(args: argparse.Namespace, record: dict[str, Any]) -> Path:
    from lightly_topo.benchmark.provenance import provenance
    from lightly_topo.benchmark.records import write_json_atomic

    record = {**record, "checkpoint": str(args.checkpoint), "data": args.data, **provenance()}
    return write_json_atomic(record, Path(args.out).expanduser())


def print_metrics(metrics: dict[str, Any]) -> None:
    for key, value in metrics.items():
        if isinstance(value, float):
            print(f"  {key}: {value:.4f}")
        elif isinstance(value, int | str):
            print(f"  {key}: {value}")


def run(args: argparse.Namespace) -> int:
    from lightly_topo.checkpoint import CheckpointError
    from lightly_topo.eval.classification import run_classification
    from lightly_topo.eval.segmentation import run_segmentation

    try:
        encoder, dataset, config, split, init = prepare(args)
        runner = run_segmentation if args.task == "segmentation" else run_classification
        result = runner(encoder, dataset, config, split=split, init=init)
    except CheckpointError as error:
        if args.traceback:
            raise
        print(f"lightly-topo {args.command}: error: {error}", file=sys.stderr)
        return 1
    path = write_result(args, result.to_dict())
    print(f"{result.task} ({init}) on {len(result.per_subject)} test subjects:")
    print_metrics(result.metrics)
    print(f"result: {path}")
    return 0
