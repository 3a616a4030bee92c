"""The configuration of a pretraining run: dataclasses, method defaults and a validator.

A run is described by :class:`PretrainConfig`. It is built in layers, each validated:

1. the dataclass defaults;
2. the method's defaults (:data:`METHOD_DEFAULTS`; ``taco`` takes the paper's recipe);
3. a YAML file (``--config``);
4. command-line flags.

Every key is checked: an unknown key raises :class:`ConfigError` naming the key, where it is
and the closest known keys; a value of the wrong type names the expected type.

Example:
    >>> config = build_config({"method": "taco", "trainer": {"max_steps": 3}})
    >>> config.optim.lr, config.topo.intra_weight, config.trainer.max_steps
    (0.0003, 10.0, 3)
    >>> build_config({"trainer": {"max_step": 3}})
    Traceback (most recent call last):
    ...
    lightly_topo.methods.config.ConfigError: unknown key 'trainer.max_step' (did you mean 'max_steps'?); known keys of 'trainer': ...
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from lightly_topo.errors import LightlyTopoError


class ConfigError(LightlyTopoError, ValueError):
    """A configuration key that is unknown, or a value of the wrong type or range."""


@dataclass
class DataConfig:
    """Where the subjects come from and how views are made.

    Attributes:
        path: A dataset folder (any layout :func:`lightly_topo.data.read_subjects` reads) or
            ``"synthetic"`` for :class:`lightly_topo.data.synthetic.SyntheticBrains`.
        layout: Folder layout (``"auto"``, ``"brats"``, ``"decathlon"``, ``"bids"``, ...).
        spacing: Resample real data to this voxel spacing (mm); ``None``: keep it.
        modalities: Modality vocabulary to use (canonical names); ``None``: all found.
        synthetic_subjects: Number of synthetic subjects (``path: synthetic`` only).
        synthetic_size: Edge length of the synthetic volumes in voxels.
        crop_size: Edge length of the cubic views fed to the backbone.
        batch_size: Subjects per batch (per device). TACO: subject pairs per batch.
        num_workers: Data-loader worker processes.
        cache_dir: On-disk cache of preprocessed volumes (real data only); ``None``: none.
        probe_label: Subject-level label for the online linear probe; ``"auto"``: the first
            categorical label found with at least two classes; ``None``: no probe.
    """

    path: str = "synthetic"
    layout: str = "auto"
    spacing: float | None = None
    modalities: list[str] | None = None
    synthetic_subjects: int = 16
    synthetic_size: int = 64
    crop_size: int = 64
    batch_size: int = 4
    num_workers: int = 0
    cache_dir: str | None = None
    probe_label: str | None = "auto"


@dataclass
class ModelConfig:
    """The backbone and the heads.

    Attributes:
        backbone: Registered backbone name (``lightly-topo list``).
        backbone_kwargs: Keyword arguments of the backbone constructor (e.g.
            ``{feature_size: 48}`` for ``swin``).
        modality_handling: ``"shared"``: one encoder applied to each modality, fused over the
            available ones; ``"stacked"``: modalities stacked as input channels.
        projection_dim: Output size of the projection heads (SimCLR, BYOL).
        hidden_dim: Hidden size of the projection and prediction heads.
    """

    backbone: str = "swin"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    modality_handling: Literal["shared", "stacked"] = "shared"
    projection_dim: int = 128
    hidden_dim: int = 512


@dataclass
class LossConfig:
    """Method-specific loss settings.

    Attributes:
        temperature: NT-Xent temperature (``simclr``, ``xmodal-simclr``, ``simclr+topo``).
        momentum_start: BYOL target momentum at step 0 (cosine schedule to 1.0).
        mask_ratio: Fraction of tokens (ViT) or input patches (CNN, Swin) masked (MAE).
        mask_patch: Edge of the masked input patches in voxels (CNN/Swin masked reconstruction).
        decoder_dim: Width of the MAE transformer decoder (ViT).
        decoder_depth: Depth of the MAE transformer decoder (ViT).
        recon_weight: Weight of the reconstruction term (``mae``, ``taco``, ``mae+topo``).
        instance_weight: Weight of the instance term in the combinations (``simclr+topo``,
            ``byol+topo``).
    """

    temperature: float = 0.1
    momentum_start: float = 0.99
    mask_ratio: float = 0.75
    mask_patch: int = 8
    decoder_dim: int = 128
    decoder_depth: int = 2
    recon_weight: float = 1.0
    instance_weight: float = 1.0


@dataclass
class TopoConfig:
    """The TACO topological alignment terms (:class:`lightly_topo.loss.TopoAlignLoss`).

    Defaults are the paper's released recipe: 10 intra + 10 inter, ``k = 5``, margins 0.05
    (intra) and 0.4 (inter).

    Attributes:
        intra_weight: Weight of the intra-instance (cross-modal, same subject) term.
        inter_weight: Weight of the inter-instance (cross-subject) term.
        k: Neighbourhood size of the topology.
        intra_margin: Margin of the intra-instance term.
        inter_margin: Margin of the inter-instance term.
        level: Backbone feature level used for the dense features (index into
            ``feature_strides``; ``-1``: the coarsest, as released; lower: finer).
        foreground_only: Restrict valid tokens to the brain foreground of the view.
    """

    intra_weight: float = 10.0
    inter_weight: float = 10.0
    k: int = 5
    intra_margin: float = 0.05
    inter_margin: float = 0.4
    level: int = -1
    foreground_only: bool = True


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay (per step).

    Attributes:
        lr: Peak learning rate.
        weight_decay: AdamW weight decay (not applied to norms and biases).
        betas: AdamW betas.
        warmup_steps: Linear warm-up steps.
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        grad_clip: Gradient-norm clipping; ``None``: none.
    """

    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0


@dataclass
class TrainerConfig:
    """Lightning Trainer settings, logging and checkpointing.

    Attributes:
        max_steps: Optimizer steps to train.
        seed: Seed of data order, augmentations, masks and initialisation.
        accelerator: ``"auto"``, ``"cpu"``, ``"gpu"``, ...
        devices: Devices per node (``"auto"`` or a count).
        num_nodes: Nodes.
        strategy: Lightning strategy (``"auto"``, ``"ddp"``, ``"ddp_spawn"``, ...).
        precision: ``"auto"`` (bf16 autocast on GPU, fp32 on CPU) or a Lightning precision.
        checkpoint_every: Save a checkpoint every this many steps (and always at the end).
        log_every: Log every this many steps.
        max_nonfinite: Stop after this many non-finite (NaN/Inf) losses in a row.
        progress: Show the rich progress bar.
        device_augment: Run the view augmentation batched on the device (BatchAugment3D)
            instead of per item in the data loader.
        memory_check: Estimate one step's peak memory before training and refuse a run that
            cannot fit the device (:mod:`lightly_topo.methods.memory`).
    """

    max_steps: int = 1000
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    checkpoint_every: int = 500
    log_every: int = 10
    max_nonfinite: int = 5
    progress: bool = True
    device_augment: bool = False
    memory_check: bool = True


@dataclass
class PretrainConfig:
    """A whole pretraining run (see the module docstring for how it is built).

    Attributes:
        method: Registered method name (``lightly-topo list``).
        out: Output folder: ``checkpoints/``, ``logs/``, ``encoder/`` and ``config.yaml``.
    """

    method: str = "simclr"
    out: str = "runs/pretrain"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    topo: TopoConfig = field(default_factory=TopoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


#: Per-method overrides of the dataclass defaults. ``taco`` is the paper's released recipe:
#: Swin-UNETR encoder (feature size 48), 96^3 crops, at most 6 subject pairs per batch,
#: AdamW lr 3e-4, weight decay 0.1.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "taco": {
        "model": {"backbone": "swin", "backbone_kwargs": {"feature_size": 48}},
        "data": {"crop_size": 96, "batch_size": 6},
        "optim": {"lr": 3e-4, "weight_decay": 0.1},
    },
    "mae": {"optim": {"lr": 1.5e-4, "weight_decay": 0.05}},
    "mae+topo": {"optim": {"lr": 1.5e-4, "weight_decay": 0.05}},
}


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base`` (dicts merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "backbone_kwargs":
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def build_config(*layers: dict[str, Any] | None) -> PretrainConfig:
    """Validate and merge layers of overrides onto the defaults of the chosen method.

    Args:
        *layers: Nested dicts (as read from YAML), later ones win. ``None`` entries are
            skipped. The method is taken from the last layer that names one.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: An unknown key (with close matches) or a value of the wrong type.
    """
    present = [layer for layer in layers if layer]
    for layer in present:
        from_dict(PretrainConfig, layer)  # validate each layer alone for precise messages
    method = PretrainConfig.method
    for layer in present:
        if "method" in layer:
            method = layer["method"]
    merged: dict[str, Any] = merge({}, METHOD_DEFAULTS.get(method, {}))
    if "backbone" in _nested(present, "model") and method in METHOD_DEFAULTS:
        # The default backbone kwargs belong to the default backbone only.
        if _nested(present, "model")["backbone"] != merged.get("model", {}).get("backbone"):
            merged.get("model", {}).pop("backbone_kwargs", None)
    for layer in present:
        merged = merge(merged, layer)
    config = from_dict(PretrainConfig, merged)
    check_ranges(config)
    return config


def _nested(layers: list[dict[str, Any]], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        if isinstance(layer.get(key), dict):
            out.update(layer[key])
    return out


def parse_set(text: str) -> tuple[str, Any]:
    """``"key=value"`` from a command line's ``--set``; the value is read as JSON where it
    parses, else kept as text.

    >>> parse_set("data.crop_size=32"), parse_set("model.backbone_kwargs={\"features\": [8, 16]}")
    (('data.crop_size', 32), ('model.backbone_kwargs', {'features': [8, 16]}))

    Raises:
        ConfigError: No ``=`` in ``text``.
    """
    import json

    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. data.crop_size=32")
    key, raw = text.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def dotted_layer(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A config layer from ``("section.key", value)`` pairs.

    >>> dotted_layer([("data.crop_size", 32), ("method", "taco")])
    {'data': {'crop_size': 32}, 'method': 'taco'}
    """
    layer: dict[str, Any] = {}
    for key, value in pairs:
        *sections, last = key.split(".")
        node = layer
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = value
    return layer


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (empty file: empty dict).

    Raises:
        FileNotFoundError: The file does not exist.
        ConfigError: The file is not valid YAML or not a mapping at the top level.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist: pass an existing YAML file.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys at the top level, got "
            f"{type(data).__name__}."
        )
    return data


def to_dict(config: Any) -> dict[str, Any]:
    """The configuration as plain nested dicts and lists (YAML-serialisable)."""
    out = dataclasses.asdict(config)
    return typing.cast(dict[str, Any], _plain(out))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type[Any], data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, checking every key and value type.

    Args:
        cls: A dataclass type whose fields are annotated.
        data: The values; absent fields take their defaults.
        where: Dotted prefix of ``data`` in the whole config (for messages).

    Raises:
        ConfigError: An unknown key or a value of the wrong type.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"'{where or '<top level>'}' must be a mapping of keys, got {type(data).__name__} "
            f"{data!r}."
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise ConfigError(
                f"unknown key '{dotted}'{hint}; known keys of '{where or '<top level>'}': "
                f"{', '.join(fields)}."
            )
        kwargs[key] = _convert(hints[key], value, dotted)
    return cls(**kwargs)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _convert(annotation: Any, value: Any, where: str) -> Any:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return from_dict(annotation, value, where)
    if origin in (Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _convert(option, value, where)
            except ConfigError as error:
                errors.append(error)
        raise ConfigError(
            f"'{where}' must be {' or '.join(_type_name(a) for a in args)}, got "
            f"{type(value).__name__} {value!r}."
        )
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"'{where}' must be null, got {value!r}.")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(
            f"'{where}' must be one of {', '.join(repr(a) for a in args)}, got {value!r}."
        )
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"'{where}' must be a bool (true/false), got {value!r}.")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"'{where}' must be an int, got {type(value).__name__} {value!r}.")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads "3e-4" as a string
            except ValueError:
                pass
        raise ConfigError(f"'{where}' must be a number, got {type(value).__name__} {value!r}.")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"'{where}' must be a string, got {type(value).__name__} {value!r}.")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"'{where}' must be a list, got {type(value).__name__} {value!r}.")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"'{where}' must be a list of {len(args)} values, got {value!r}.")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{where}' must be a mapping, got {type(value).__name__} {value!r}.")
        return {str(k): v for k, v in value.items()}
    raise ConfigError(f"'{where}': unsupported annotation {annotation!r}.")


def check_ranges(config: PretrainConfig) -> None:
    """Check value ranges that types cannot express.

    Raises:
        ConfigError: A value out of its range, naming the key and the allowed range.
    """
    positive = {
        "data.synthetic_subjects": config.data.synthetic_subjects,
        "data.synthetic_size": config.data.synthetic_size,
        "data.crop_size": config.data.crop_size,
        "data.batch_size": config.data.batch_size,
        "model.projection_dim": config.model.projection_dim,
        "model.hidden_dim": config.model.hidden_dim,
        "loss.mask_patch": config.loss.mask_patch,
        "loss.decoder_dim": config.loss.decoder_dim,
        "loss.decoder_depth": config.loss.decoder_depth,
        "topo.k": config.topo.k,
        "trainer.max_steps": config.trainer.max_steps,
        "trainer.num_nodes": config.trainer.num_nodes,
        "trainer.checkpoint_every": config.trainer.checkpoint_every,
        "trainer.log_every": config.trainer.log_every,
        "trainer.max_nonfinite": config.trainer.max_nonfinite,
    }
    for key, count in positive.items():
        if count < 1:
            raise ConfigError(f"'{key}' must be at least 1, got {count}.")
    non_negative: dict[str, float] = {
        "data.num_workers": config.data.num_workers,
        "optim.lr": config.optim.lr,
        "optim.weight_decay": config.optim.weight_decay,
        "optim.warmup_steps": config.optim.warmup_steps,
        "loss.recon_weight": config.loss.recon_weight,
        "loss.instance_weight": config.loss.instance_weight,
        "topo.intra_weight": config.topo.intra_weight,
        "topo.inter_weight": config.topo.inter_weight,
        "trainer.seed": config.trainer.seed,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"'{key}' must be non-negative, got {value}.")
    if not 0.0 < config.loss.mask_ratio < 1.0:
        raise ConfigError(f"'loss.mask_ratio' must be in (0, 1), got {config.loss.mask_ratio}.")
    if config.loss.temperature <= 0:
        raise ConfigError(f"'loss.temperature' must be positive, got {config.loss.temperature}.")
    if not 0.0 <= config.loss.momentum_start <= 1.0:
        raise ConfigError(
            f"'loss.momentum_start' must be in [0, 1], got {config.loss.momentum_start}."
        )
    if not 0.0 <= config.optim.min_lr_ratio <= 1.0:
        raise ConfigError(
            f"'optim.min_lr_ratio' must be in [0, 1], got {config.optim.min_lr_ratio}."
        )
    if isinstance(config.trainer.devices, str) and config.trainer.devices != "auto":
        raise ConfigError(
            f"'trainer.devices' must be an int or 'auto', got {config.trainer.devices!r}."
        )
