"""``lightly-topo pretrain``: self-supervised pretraining from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain an encoder with simclr, byol, mae, taco, the +topo combinations or xmodal-simclr",
        description=(
            "Pretrain a 3D encoder. Settings come from the method's defaults, then --config "
            "FILE.yaml, then the flags below. Writes OUT/checkpoints (every "
            "trainer.checkpoint_every steps and last.ckpt), OUT/logs (CSV and TensorBoard), "
            "OUT/encoder/encoder.pt (load with lightly_topo.checkpoint.load_pretrained) and "
            "OUT/config.yaml."
        ),
    )
    parser.add_argument("--method", help="method name (see `lightly-topo list`), e.g. taco")
    parser.add_argument("--backbone", help="backbone name: swin, resenc, vit")
    parser.add_argument("--data", help="dataset folder, or 'synthetic'")
    parser.add_argument("--config", help="YAML file with the run's settings")
    parser.add_argument("--max-steps", type=int, help="optimizer steps")
    parser.add_argument("--out", help="output folder")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    parser.add_argument("--batch-size", type=int, help="subjects per batch and device")
    parser.add_argument("--crop-size", type=int, help="edge of the cubic crops")
    parser.add_argument("--seed", type=int, help="seed of data order, views and masks")
    parser.add_argument("--num-workers", type=int, help="data-loader workers")
    parser.add_argument("--accelerator", help="auto, cpu, gpu, ...")
    parser.add_argument("--devices", help="devices per node: a count or 'auto'")
    parser.add_argument("--num-nodes", type=int, help="nodes")
    parser.add_argument("--strategy", help="Lightning strategy: auto, ddp, ddp_spawn, ...")
    parser.add_argument("--precision", help="auto (bf16 on GPU), 32-true, bf16-mixed, ...")
    parser.add_argument(
        "--device-augment", action="store_true", help="augment batched on the device"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key, e.g. --set data.crop_size=32 --set optim.lr=1e-3 (repeatable; "
        "wins over --config and the flags above)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks on error")
    parser.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The command-line flags as a config layer."""
    layer: dict[str, Any] = {}

    def put(section: str | None, key: str, value: Any) -> None:
        if value is None:
            return
        if section is None:
            layer[key] = value
        else:
            layer.setdefault(section, {})[key] = value

    put(None, "method", args.method)
    put(None, "out", args.out)
    put("model", "backbone", args.backbone)
    put("data", "path", args.data)
    put("data", "batch_size", args.batch_size)
    put("data", "crop_size", args.crop_size)
    put("data", "num_workers", args.num_workers)
    put("trainer", "max_steps", args.max_steps)
    put("trainer", "seed", args.seed)
    put("trainer", "accelerator", args.accelerator)
    if args.devices is not None:
        put("trainer", "devices", int(args.devices) if args.devices.isdigit() else args.devices)
    put("trainer", "num_nodes", args.num_nodes)
    put("trainer", "strategy", args.strategy)
    put("trainer", "precision", args.precision)
    if args.device_augment:
        put("trainer", "device_augment", True)
    if args.no_progress:
        put("trainer", "progress", False)
    return layer


#: The configuration ``lightly-topo pretrain`` uses without a GPU, key by key, where the user
#: sets none of these keys: the methods' defaults are the paper's GPU recipe (Swin-UNETR 48,
#: 96^3 crops), which does not fit a CPU machine's memory.
CPU_DEFAULTS: dict[str, Any] = {
    "model": {
        "backbone": "resenc",
        "backbone_kwargs": {"features": [8, 16, 32], "strides": [2, 2, 2], "blocks_per_stage": 1},
    },
    "data": {"crop_size": 32, "batch_size": 2, "synthetic_size": 48},
}


def cpu_layer(layers: list[dict[str, Any] | None], accelerator: str | None) -> dict[str, Any]:
    """The part of :data:`CPU_DEFAULTS` that applies: nothing on a GPU run, else every key
    that no layer sets (the backbone and its arguments count as one key)."""
    import torch

    gpu = accelerator in ("gpu", "cuda") or (
        accelerator in (None, "auto") and torch.cuda.is_available()
    )
    if gpu:
        return {}
    given = [layer for layer in layers if layer]

    def is_set(section: str, key: str) -> bool:
        return any(key in (layer.get(section) or {}) for layer in given)

    out: dict[str, Any] = {}
    if not (is_set("model", "backbone") or is_set("model", "backbone_kwargs")):
        out["model"] = dict(CPU_DEFAULTS["model"])
    data = {k: v for k, v in CPU_DEFAULTS["data"].items() if not is_set("data", k)}
    if data:
        out["data"] = data
    return out


def merge_layers(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win (nested dicts merge)."""
    from lightly_topo.methods.config import merge

    out: dict[str, Any] = {}
    for layer in layers:
        out = merge(out, layer)
    return out


def run(args: argparse.Namespace) -> int:
    from lightly_topo.checkpoint import CheckpointError
    from lightly_topo.methods.callbacks import NonFiniteLossError
    from lightly_topo.methods.config import (
        ConfigError,
        build_config,
        dotted_layer,
        load_yaml,
        parse_set,
    )
    from lightly_topo.methods.train import pretrain

    try:
        set_layer = dotted_layer([parse_set(text) for text in args.set])
    except ConfigError as error:
        print(f"lightly-topo pretrain: error: {error}", file=sys.stderr)
        return 2
    file_layer = load_yaml(args.config) if args.config else None
    flag_layer = merge_layers(overrides(args), set_layer)
    if not (file_layer or {}).get("method") and "method" not in flag_layer:
        print(
            "lightly-topo pretrain: error: no method given; pass --method NAME (see "
            "`lightly-topo list`) or set 'method' in the --config file.",
            file=sys.stderr,
        )
        return 2
    accelerator = (flag_layer.get("trainer") or {}).get("accelerator") or (
        (file_layer or {}).get("trainer") or {}
    ).get("accelerator")
    device_layer = cpu_layer([file_layer, flag_layer], accelerator)
    config = build_config(device_layer, file_layer, flag_layer)
    if device_layer:
        applied = [
            f"{section}.{key}={value}"
            for section, values in device_layer.items()
            for key, value in values.items()
        ]
        print(
            "no GPU: CPU-sized settings for the keys you did not set (the methods' defaults "
            f"are the paper's GPU recipe): {', '.join(applied)}",
            file=sys.stderr,
        )
    try:
        result = pretrain(config, resume=args.resume)
    except (NonFiniteLossError, CheckpointError, ConfigError) as error:
        if args.traceback:
            raise
        print(f"lightly-topo pretrain: error: {error}", file=sys.stderr)
        return 1
    last = result.losses[-1][1] if result.losses else float("nan")
    print(
        f"done: {config.method} on {config.model.backbone}, {len(result.losses)} steps in this "
        f"run, last loss {last:.4f}, {result.nonfinite_skipped} non-finite steps skipped"
    )
    print(f"checkpoint: {result.last_checkpoint}")
    if result.encoder_path is not None:
        print(f"encoder: {result.encoder_path}")
    print(f"logs: {result.out / 'logs'}")
    return 0
