"""Saving and loading pretrained encoders with the metadata needed to rebuild and use them.

File format (``format_version`` 1): one ``torch.save`` file readable with
``torch.load(path, weights_only=True)``; it holds only tensors, dicts, lists, str, int, float,
bool and None::

    {
        "format": "lightly_topo.pretrained",
        "format_version": 1,
        "metadata": {
            "method": str,                       # e.g. "taco", "simclr+topo"
            "backbone": {"name": str,            # e.g. "swin"; rebuilt via the registry
                         "config": dict},        # keyword arguments of the backbone class
            "modality_mode": str | None,         # "shared" / "stacked" for a MultiModalEncoder
            "num_modalities": int | None,
            "modalities": list[str],             # modality vocabulary, in channel order
            "patch_size": list[int],             # training crop (D, H, W) in voxels
            "spacing": list[float],              # voxel spacing (D, H, W) in mm
            "normalization": str | dict,         # intensity normalisation applied to inputs
            "training_steps": int,
            "package_version": str,              # lightly-topo version that wrote the file
            "torch_version": str,
            "created": str,                      # ISO 8601 UTC time
            "checksum": str,                     # sha256 of the state dict (names, dtypes, bytes)
            "extra": dict,                       # anything else the caller passed
        },
        "state_dict": {str: Tensor},             # backbone weights, keys relative to the backbone
    }

Files are written atomically: a temporary file in the target folder, flushed and fsynced, then
``os.replace``-d over the target, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import pickle
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightly_topo._version import __version__
from lightly_topo.errors import LightlyTopoError

FORMAT_NAME = "lightly_topo.pretrained"
FORMAT_VERSION = 1

#: Leading key prefixes stripped when matching checkpoint keys to model keys.
KEY_PREFIXES: tuple[str, ...] = (
    "module.",
    "_orig_mod.",
    "model.",
    "backbone.",
    "encoder.",
    "swinViT.",
)


class CheckpointError(LightlyTopoError):
    """A checkpoint that cannot be read or used; ``path`` names the file."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist or is not a file."""


class CorruptCheckpointError(CheckpointError):
    """A truncated or corrupt file, or one that is not a checkpoint."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """A checkpoint that does not fit the model: shapes, missing or unexpected keys."""


class BackboneMismatchError(CheckpointMismatchError):
    """A checkpoint of another backbone than the model it is loaded into."""


@dataclass
class LoadResult:
    """What :func:`load_pretrained` did.

    Attributes:
        model: The model holding the loaded weights (rebuilt or the one given).
        metadata: The checkpoint's metadata (empty for a foreign state dict).
        missing_keys: Model keys the checkpoint did not provide.
        unexpected_keys: Checkpoint keys that match no model key.
        remapped_keys: Checkpoint keys loaded under another name (prefix remapping).
    """

    model: nn.Module
    metadata: dict[str, Any]
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    remapped_keys: dict[str, str] = field(default_factory=dict)


def save_pretrained(
    encoder: nn.Module,
    path: str | os.PathLike[str],
    *,
    method: str,
    backbone_config: Mapping[str, Any] | None = None,
    modalities: Sequence[str],
    patch_size: int | Sequence[int],
    spacing: float | Sequence[float],
    normalization: str | Mapping[str, Any],
    training_steps: int,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Writes an encoder's weights and metadata to ``path`` (format in the module docstring).

    Args:
        encoder: A :class:`~lightly_topo.models.Backbone3D`, a
            :class:`~lightly_topo.models.MultiModalEncoder` (its backbone is saved and its mode
            recorded), or any module when ``backbone_config`` names a registered backbone.
        path: Target file (conventionally ``*.pt``); parent folders are created.
        method: Pretraining method name (``"taco"``, ``"simclr"``, ...).
        backbone_config: ``{"name": str, "config": {...}}`` or ``{"name": str, **kwargs}``;
            defaults to the backbone's own ``name`` and ``config``.
        modalities: Modality vocabulary, in channel order.
        patch_size: Training crop size ``(D, H, W)`` (an int for a cube).
        spacing: Voxel spacing in mm (a float for isotropic).
        normalization: Intensity normalisation name or its parameters.
        training_steps: Optimiser steps done.
        extra: More plain metadata (str keys; values tensors-free plain Python).

    Returns:
        The path written.

    Raises:
        ValueError: If an argument cannot be stored (names the argument).

    Examples:
        >>> import tempfile
        >>> from lightly_topo.models import build_backbone
        >>> net = build_backbone("resenc", features=(8, 16), blocks_per_stage=1)
        >>> p = save_pretrained(net, Path(tempfile.mkdtemp()) / "enc.pt", method="simclr", modalities=["t1", "t2"],
        ...                     patch_size=32, spacing=1.0, normalization="zscore",
        ...                     training_steps=10)
        >>> load_pretrained(p).metadata["backbone"]["name"]
        'resenc'
    """
    from lightly_topo.models.base import Backbone3D
    from lightly_topo.models.modality import MultiModalEncoder

    backbone: nn.Module = encoder
    mode: str | None = None
    num_modalities: int | None = None
    if isinstance(encoder, MultiModalEncoder):
        backbone, mode, num_modalities = encoder.backbone, encoder.mode, encoder.num_modalities
    if not isinstance(backbone, nn.Module):
        raise ValueError(
            f"save_pretrained: encoder must be a torch.nn.Module, got {type(encoder).__name__}."
        )

    if backbone_config is None:
        if not isinstance(backbone, Backbone3D):
            raise ValueError(
                f"save_pretrained: {type(backbone).__name__} is not a Backbone3D; pass "
                f"backbone_config={{'name': ..., 'config': {{...}}}} so it can be rebuilt."
            )
        name, config = backbone.name, backbone.config
    else:
        cfg = dict(backbone_config)
        name = cfg.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"save_pretrained: backbone_config needs a 'name' (str), got {backbone_config!r}."
            )
        config = cfg.pop("config") if set(cfg) == {"config"} else cfg
        if isinstance(backbone, Backbone3D) and backbone.name and backbone.name != name:
            raise ValueError(
                f"save_pretrained: backbone_config names {name!r} but the encoder is a "
                f"{backbone.name!r} backbone ({type(backbone).__name__})."
            )
    if not isinstance(method, str) or not method:
        raise ValueError(f"save_pretrained: method must be a non-empty str, got {method!r}.")
    if isinstance(modalities, str) or not all(isinstance(m, str) for m in modalities):
        raise ValueError(f"save_pretrained: modalities must be a list of str, got {modalities!r}.")
    if (
        isinstance(training_steps, bool)
        or not isinstance(training_steps, int)
        or training_steps < 0
    ):
        raise ValueError(
            f"save_pretrained: training_steps must be an int >= 0, got {training_steps!r}."
        )

    state = {k: v.detach().to("cpu").clone() for k, v in backbone.state_dict().items()}
    metadata: dict[str, Any] = {
        "method": method,
        "backbone": {"name": name, "config": _plain(config, "backbone_config")},
        "modality_mode": mode,
        "num_modalities": num_modalities,
        "modalities": [str(m) for m in modalities],
        "patch_size": _triple(patch_size, "patch_size", int),
        "spacing": _triple(spacing, "spacing", float),
        "normalization": _plain(normalization, "normalization"),
        "training_steps": int(training_steps),
        "package_version": __version__,
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "checksum": state_dict_checksum(state),
        "extra": _plain(dict(extra or {}), "extra"),
    }
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "metadata": _plain(metadata, "metadata"),
        "state_dict": state,
    }
    return _atomic_save(payload, Path(path))


def read_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Reads a checkpoint with ``weights_only=True`` and checks its structure.

    Besides lightly-topo files, a plain state dict, or a dict holding one under
    ``"state_dict"``, ``"model"`` or ``"module"`` (Lightning, other libraries), is accepted
    with empty metadata.

    Returns:
        ``{"metadata": dict, "state_dict": dict[str, Tensor]}``.

    Raises:
        CheckpointNotFoundError: If ``path`` is not a file.
        CorruptCheckpointError: If the file is truncated, corrupt, not weights-only or not a
            checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointNotFoundError(f"checkpoint {p} does not exist or is not a file.", p)
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CorruptCheckpointError(
                f"checkpoint {p} holds Python objects other than tensors and plain containers, "
                f"so it cannot be read with torch.load(weights_only=True). Load only files you "
                f"trust; re-save the weights with lightly_topo.save_pretrained. ({_first_line(exc)})",
                p,
            ) from exc
        raise CorruptCheckpointError(
            f"checkpoint {p} cannot be unpickled; it is corrupt or not a torch file "
            f"({_first_line(exc)}).",
            p,
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise CorruptCheckpointError(
            f"checkpoint {p} is truncated or corrupt ({type(exc).__name__}: {_first_line(exc)}); "
            f"copy or download it again.",
            p,
        ) from exc

    if isinstance(obj, dict) and obj.get("format") == FORMAT_NAME:
        version = obj.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CorruptCheckpointError(
                f"checkpoint {p} has format_version {version!r}; this lightly-topo "
                f"({__version__}) reads up to {FORMAT_VERSION}. Update lightly-topo.",
                p,
            )
        metadata, state = obj.get("metadata"), obj.get("state_dict")
        if (
            not isinstance(metadata, dict)
            or not isinstance(state, dict)
            or not _is_state_dict(state)
        ):
            raise CorruptCheckpointError(
                f"checkpoint {p} lacks a metadata dict or a state_dict of tensors.", p
            )
        expected = metadata.get("checksum")
        if expected is not None and expected != state_dict_checksum(state):
            raise CorruptCheckpointError(
                f"checkpoint {p}: the weights do not match the checksum stored with them; the "
                f"file is corrupt. Copy or download it again.",
                p,
            )
        return {"metadata": metadata, "state_dict": state}

    state = None
    if _is_state_dict(obj):
        state = obj
    elif isinstance(obj, dict):
        for key in ("state_dict", "model", "module"):
            if _is_state_dict(obj.get(key)):
                state = obj[key]
                break
    if state is None:
        raise CorruptCheckpointError(
            f"checkpoint {p} is neither a lightly-topo checkpoint nor a state dict of tensors "
            f"(top-level {type(obj).__name__}"
            + (f" with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else "")
            + ").",
            p,
        )
    return {"metadata": {}, "state_dict": state}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a checkpoint (see the module docstring)."""
    return read_checkpoint(path)["metadata"]


def load_pretrained(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    *,
    strict: bool = True,
    map_location: str | torch.device = "cpu",
) -> LoadResult:
    """Loads a checkpoint, rebuilding the encoder from its metadata or into ``model``.

    Keys are matched exactly first, then after stripping the prefixes in
    :data:`KEY_PREFIXES` (``module.``, ``backbone.``, ``encoder.``, ``swinViT.``, ``model.``)
    from either side. A :class:`~lightly_topo.models.MultiModalEncoder` receives the weights in
    its backbone.

    Args:
        path: Checkpoint file.
        model: Model to load into; ``None`` rebuilds the backbone (and its
            ``MultiModalEncoder`` if one was saved) from the metadata via the registry.
        strict: Refuse missing or unexpected keys (shape mismatches are always refused).
        map_location: Device the tensors are loaded to.

    Returns:
        A :class:`LoadResult` with the model, metadata and key report.

    Raises:
        CheckpointNotFoundError, CorruptCheckpointError: Unreadable file (names the path).
        BackboneMismatchError: If the checkpoint's backbone is not the model's.
        CheckpointMismatchError: On shape mismatches, or missing/unexpected keys with ``strict``.
    """
    from lightly_topo.models.base import Backbone3D
    from lightly_topo.models.modality import MultiModalEncoder

    ckpt = read_checkpoint(path, map_location)
    metadata, state = ckpt["metadata"], ckpt["state_dict"]
    rebuilt = model is None
    if model is None:
        model = _rebuild(metadata, Path(path))
    target = model.backbone if isinstance(model, MultiModalEncoder) else model
    saved_name = (metadata.get("backbone") or {}).get("name")
    if saved_name and isinstance(target, Backbone3D) and target.name and target.name != saved_name:
        raise BackboneMismatchError(
            f"checkpoint {path} holds a {saved_name!r} backbone but the model is a "
            f"{target.name!r} backbone ({type(target).__name__}); build a {saved_name!r} backbone "
            f"or pass model=None to rebuild it from the checkpoint.",
            path,
        )
    missing, unexpected, remapped = _load_state(target, state, strict=strict, path=path)
    if rebuilt:
        model.to(map_location)
    return LoadResult(model, metadata, missing, unexpected, remapped)


def load_into_monai_swinunetr(
    path: str | os.PathLike[str],
    swinunetr: nn.Module,
    *,
    strict: bool = True,
    expand_in_channels: bool = False,
    map_location: str | torch.device = "cpu",
) -> LoadResult:
    """Loads a ``swin`` checkpoint into a MONAI ``SwinUNETR``'s encoder ``swinViT``.

    The decoder of the ``SwinUNETR`` keeps its initialisation; fine-tune it with MONAI as
    usual. The ``SwinUNETR`` must have the same ``feature_size``, ``depths``, ``num_heads``,
    ``patch_size`` and ``use_v2`` as the pretrained encoder (``window_size`` does not change
    the weights' shapes but should match too).

    Args:
        path: A checkpoint of a ``swin`` backbone.
        swinunetr: A :class:`monai.networks.nets.SwinUNETR`.
        strict: Refuse missing or unexpected encoder keys.
        expand_in_channels: When the checkpoint has 1 input channel (the shared per-modality
            encoder) and the ``SwinUNETR`` has ``C > 1``, repeat the patch-embedding weights over
            the ``C`` channels, divided by ``C`` (so a constant input gives the same output).
        map_location: Device the tensors are loaded to.

    Raises:
        BackboneMismatchError: If the checkpoint is not a ``swin`` checkpoint.
        CheckpointMismatchError: On shape mismatches or (with ``strict``) missing keys.
    """
    swin_vit = getattr(swinunetr, "swinViT", None)
    if not isinstance(swin_vit, nn.Module):
        raise TypeError(
            f"load_into_monai_swinunetr needs a monai.networks.nets.SwinUNETR (with a swinViT "
            f"encoder), got {type(swinunetr).__name__}."
        )
    ckpt = read_checkpoint(path, map_location)
    metadata, state = ckpt["metadata"], dict(ckpt["state_dict"])
    saved_name = (metadata.get("backbone") or {}).get("name")
    if saved_name and saved_name != "swin":
        raise BackboneMismatchError(
            f"checkpoint {path} holds a {saved_name!r} backbone; only 'swin' checkpoints load "
            f"into MONAI's SwinUNETR.",
            path,
        )
    if expand_in_channels:
        want = swin_vit.state_dict()["patch_embed.proj.weight"]
        for key, value in state.items():
            if _canonical(key) == "patch_embed.proj.weight" and value.shape[1] == 1 < want.shape[1]:
                state[key] = value.repeat(1, want.shape[1], 1, 1, 1) / want.shape[1]
    missing, unexpected, remapped = _load_state(swin_vit, state, strict=strict, path=path)
    return LoadResult(swinunetr, metadata, missing, unexpected, remapped)


def remap_state_dict_keys(
    checkpoint_keys: Iterable[str], model_keys: Iterable[str]
) -> tuple[dict[str, str], list[str]]:
    """Matches checkpoint keys to model keys, stripping the prefixes in :data:`KEY_PREFIXES`.

    Exact matches win; then a checkpoint key is stripped prefix by prefix until it names a
    model key; then both sides are compared with every leading known prefix removed (a
    canonical name shared by two model keys is not used).

    Returns:
        ``(mapping, unexpected)``: checkpoint key -> model key, and the checkpoint keys that
        match nothing.

    Examples:
        >>> remap_state_dict_keys(["module.backbone.w", "head.b"], ["w"])
        ({'module.backbone.w': 'w'}, ['head.b'])
    """
    ckpt_keys = list(checkpoint_keys)
    model_list = list(model_keys)
    model_set = set(model_list)
    by_canonical: dict[str, str] = {}
    ambiguous: set[str] = set()
    for key in model_list:
        canon = _canonical(key)
        if canon in by_canonical:
            ambiguous.add(canon)
        by_canonical.setdefault(canon, key)

    mapping: dict[str, str] = {}
    used: set[str] = set()
    for key in ckpt_keys:
        if key in model_set:
            mapping[key] = key
            used.add(key)
    unexpected: list[str] = []
    for key in ckpt_keys:
        if key in mapping:
            continue
        found = None
        stripped = key
        while found is None:
            prefix = next((p for p in KEY_PREFIXES if stripped.startswith(p)), None)
            if prefix is None:
                break
            stripped = stripped[len(prefix) :]
            if stripped in model_set and stripped not in used:
                found = stripped
        if found is None:
            canon = _canonical(key)
            candidate = by_canonical.get(canon)
            if candidate is not None and canon not in ambiguous and candidate not in used:
                found = candidate
        if found is None:
            unexpected.append(key)
        else:
            mapping[key] = found
            used.add(found)
    return mapping, unexpected


def state_dict_checksum(state: Mapping[str, Tensor]) -> str:
    """sha256 over the sorted key names, dtypes, shapes and raw bytes of a state dict."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}|{tensor.dtype}|{tuple(state[key].shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _load_state(
    model: nn.Module,
    state: Mapping[str, Tensor],
    *,
    strict: bool,
    path: str | os.PathLike[str],
) -> tuple[list[str], list[str], dict[str, str]]:
    model_state = model.state_dict()
    mapping, unexpected = remap_state_dict_keys(state.keys(), model_state.keys())
    mismatched = [
        f"{ck}{'' if ck == mk else f' (as {mk})'}: checkpoint {tuple(state[ck].shape)} vs model "
        f"{tuple(model_state[mk].shape)}"
        for ck, mk in mapping.items()
        if tuple(state[ck].shape) != tuple(model_state[mk].shape)
    ]
    if mismatched:
        raise CheckpointMismatchError(
            f"checkpoint {path} does not fit {type(model).__name__}: {len(mismatched)} "
            f"tensor(s) differ in shape: {_listing(mismatched)}. The checkpoint was trained with "
            f"another configuration (channels, feature size, input channels, patch size); build "
            f"the model from the checkpoint's metadata (load_pretrained(path)).",
            path,
        )
    targets = set(mapping.values())
    missing = [k for k in model_state if k not in targets]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        raise CheckpointMismatchError(
            f"checkpoint {path} does not fit {type(model).__name__}: {'; '.join(parts)}. "
            f"Pass strict=False to load the matching keys anyway.",
            path,
        )
    model.load_state_dict({mk: state[ck] for ck, mk in mapping.items()}, strict=False)
    remapped = {ck: mk for ck, mk in mapping.items() if ck != mk}
    return missing, unexpected, remapped


def _rebuild(metadata: Mapping[str, Any], path: Path) -> nn.Module:
    from lightly_topo import registry
    from lightly_topo.models.modality import MultiModalEncoder

    backbone_meta = metadata.get("backbone")
    if not isinstance(backbone_meta, dict) or not isinstance(backbone_meta.get("name"), str):
        raise CheckpointError(
            f"checkpoint {path} has no lightly-topo metadata naming its backbone, so it cannot "
            f"be rebuilt; build the model yourself and pass it as model=.",
            path,
        )
    name, config = backbone_meta["name"], dict(backbone_meta.get("config") or {})
    try:
        backbone = registry.create("backbone", name, **config)
    except registry.RegistryError as exc:
        raise CheckpointError(
            f"checkpoint {path}: cannot rebuild backbone {name!r}: {exc}", path
        ) from exc
    mode = metadata.get("modality_mode")
    if mode:
        return MultiModalEncoder(
            backbone, mode=mode, num_modalities=int(metadata["num_modalities"])
        )
    return backbone


def _atomic_save(payload: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    if hasattr(os, "O_DIRECTORY"):
        try:
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return path
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)
    return path


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain weights-only-loadable Python (tuples become lists)."""
    if value is None or isinstance(value, bool):
        return value
    for plain in (int, float, str):
        if isinstance(value, plain):
            return plain(value)  # drops subclasses such as torch.__version__
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"save_pretrained: {where} has a non-str key {k!r}.")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ValueError(
        f"save_pretrained: {where} is a {type(value).__name__}; metadata may hold only str, int, "
        f"float, bool, None, lists and dicts."
    )


def _triple(value: Any, where: str, kind: type) -> list[Any]:
    items = [value] * 3 if isinstance(value, (int, float)) else list(value)
    if len(items) != 3 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in items
    ):
        raise ValueError(
            f"save_pretrained: {where} must be a number or 3 numbers (D, H, W), got {value!r}."
        )
    return [kind(v) for v in items]


def _canonical(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in KEY_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def _listing(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KEY_PREFIXES",
    "BackboneMismatchError",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "LoadResult",
    "load_into_monai_swinunetr",
    "load_pretrained",
    "read_checkpoint",
    "read_metadata",
    "remap_state_dict_keys",
    "save_pretrained",
    "state_dict_checksum",
]
