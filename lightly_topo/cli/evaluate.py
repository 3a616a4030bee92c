"""``lightly-topo evaluate``: one downstream task from a checkpoint, with its sweeps.

``--protocol standard`` trains and scores the task once (as ``lightly-topo finetune``);
``--protocol missing-modality`` trains once with every modality and scores every non-empty
modality subset kept at test time (:func:`lightly_topo.eval.run_missing_modality`);
``--protocol low-label`` trains at each ``--fractions`` share of the labelled training
subjects (:func:`lightly_topo.eval.run_low_label`). The result is written as JSON.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lightly_topo.cli.finetune import add_dataset_arguments, prepare, print_metrics, write_result


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="run one downstream task from a checkpoint (standard, missing-modality or low-label)",
        description=(
            "Evaluate a pretrained encoder checkpoint on one downstream task: standard "
            "train/test, the missing-modality sweep over every modality subset, or the "
            "low-label curve. Writes the result as JSON (--out)."
        ),
    )
    add_dataset_arguments(parser)
    parser.add_argument(
        "--protocol",
        default="missing-modality",
        choices=("standard", "missing-modality", "low-label"),
        help="what to run (default: missing-modality)",
    )
    parser.add_argument(
        "--fractions",
        default="0.1,0.25,1.0",
        help="low-label: comma-separated fractions of labelled training subjects",
    )
    parser.add_argument(
        "--subsets",
        default=None,
        help="missing-modality: subsets to test, e.g. 't1+flair,flair' (default: all)",
    )
    parser.set_defaults(func=run)


def parse_fractions(text: str) -> list[float]:
    """``"0.1,0.5,1"`` to ``[0.1, 0.5, 1.0]``.

    >>> parse_fractions("0.1, 0.5,1")
    [0.1, 0.5, 1.0]
    """
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise ValueError(f"--fractions {text!r}: expected numbers like 0.1,0.25,1.0") from error
    if not values:
        raise ValueError(f"--fractions {text!r}: no fraction given")
    return values


def run(args: argparse.Namespace) -> int:
    from lightly_topo.checkpoint import CheckpointError
    from lightly_topo.eval.classification import run_classification
    from lightly_topo.eval.low_label import run_low_label
    from lightly_topo.eval.missing_modality import run_missing_modality
    from lightly_topo.eval.segmentation import run_segmentation

    try:
        encoder, dataset, config, split, init = prepare(args)
        if args.protocol == "standard":
            runner = run_segmentation if args.task == "segmentation" else run_classification
            result: Any = runner(encoder, dataset, config, split=split, init=init)
        elif args.protocol == "missing-modality":
            subsets = (
                None
                if args.subsets is None
                else [tuple(s.split("+")) for s in args.subsets.split(",") if s]
            )
            result = run_missing_modality(
                encoder, dataset, config, split=split, subsets=subsets, init=init
            )
        else:
            result = run_low_label(
                encoder, dataset, config, parse_fractions(args.fractions), split=split, init=init
            )
    except CheckpointError as error:
        if args.traceback:
            raise
        print(f"lightly-topo {args.command}: error: {error}", file=sys.stderr)
        return 1
    path = write_result(args, {"protocol": args.protocol, **result.to_dict()})
    print(f"{result.task} ({init}), protocol {args.protocol}:")
    if args.protocol == "missing-modality":
        for row in result.metrics["subsets"]:
            print(f"  {row['name']:<24} {result.metrics['metric']} {row['metric']:.4f}")
    elif args.protocol == "low-label":
        for point in result.curve:
            print(
                f"  fraction {point['fraction']:<5} ({point['n_labelled']} subjects) {point['metric']:.4f}"
            )
    else:
        print_metrics(result.metrics)
    print(f"result: {path}")
    return 0
