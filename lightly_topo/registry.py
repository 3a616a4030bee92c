"""Look up methods, losses, backbones and view transforms by name.

Entries are registered lazily as ``"module:attr"`` strings with a one-line description:
importing this module imports nothing but the standard library, and a target module is only
imported when its entry is resolved (a missing module is an error for that entry alone).

Third-party packages add entries through the Python entry-point group ``lightly_topo.plugins``:
each entry point is a callable taking the :class:`Registry`, or a module exposing
``register(registry)``. Plugins are loaded once, on the first lookup; a broken plugin gives a
:class:`PluginWarning` naming it and is skipped.

Examples:
    >>> from lightly_topo import registry
    >>> registry.get("loss", "ntxent")
    <class 'lightly.loss.ntx_ent_loss.NTXentLoss'>
    >>> net = registry.create("backbone", "resenc", features=(8, 16), blocks_per_stage=1)
    >>> [name for kind, name, _ in registry.list("transform")]
    ['byol3d', 'mae3d', 'simclr3d', 'topo3d']

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."lightly_topo.plugins"]
    my_plugin = "my_package.lightly_topo_plugin:register"

with ``register(registry)`` calling ``registry.register("loss", "my_loss",
"my_package.losses:MyLoss", "what it does")``.
"""

from __future__ import annotations

import builtins
import difflib
import importlib
import importlib.metadata
import threading
import types
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lightly_topo.errors import LightlyTopoError

#: The kinds of entries the registry holds.
KINDS: tuple[str, ...] = ("method", "loss", "backbone", "transform")

#: Entry-point group scanned for plugins.
PLUGIN_GROUP = "lightly_topo.plugins"


class RegistryError(LightlyTopoError):
    """Base class of the registry's errors."""


class UnknownEntryError(RegistryError, LookupError):
    """A kind or name that is not registered; the message lists close matches."""


class EntryResolutionError(RegistryError, ImportError):
    """A registered ``"module:attr"`` target that cannot be imported."""


class DuplicateEntryError(RegistryError, ValueError):
    """A name registered twice under one kind without ``overwrite=True``."""


class PluginWarning(UserWarning):
    """A ``lightly_topo.plugins`` entry point that failed to load."""


@dataclass(frozen=True)
class Entry:
    """One registered object.

    Attributes:
        kind: One of :data:`KINDS` (or a kind added by a plugin).
        name: Name to look it up by.
        target: ``"module:attr"`` string (resolved on first use) or the object itself.
        description: One line saying what it is.
    """

    kind: str
    name: str
    target: str | object
    description: str

    def resolve(self) -> Any:
        """Imports and returns the target object.

        Raises:
            EntryResolutionError: If the module cannot be imported or lacks the attribute.
        """
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr_path = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise EntryResolutionError(
                f"{self.kind} {self.name!r} points to {self.target!r}, but module "
                f"{module_name!r} cannot be imported ({type(exc).__name__}: {exc}). Install or "
                f"update the package providing it, or choose another {self.kind}."
            ) from exc
        for part in attr_path.split(".") if attr_path else []:
            try:
                obj = getattr(obj, part)
            except AttributeError as exc:
                raise EntryResolutionError(
                    f"{self.kind} {self.name!r} points to {self.target!r}, but {part!r} does "
                    f"not exist in {module_name!r}; the installed version may be too old."
                ) from exc
        return obj


class Registry:
    """Name-to-object tables for each kind, with lazy targets and entry-point plugins.

    Args:
        load_plugins: Load the ``lightly_topo.plugins`` entry points on first lookup.
    """

    def __init__(self, load_plugins: bool = True) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._plugins_loaded = not load_plugins
        self._lock = threading.RLock()

    def register(
        self,
        kind: str,
        name: str,
        target: str | object | None = None,
        description: str = "",
        *,
        overwrite: bool = False,
    ) -> Any:
        """Registers ``target`` as ``name`` under ``kind``.

        Without ``target`` it returns a decorator registering the decorated object::

            @registry.register("loss", "my_loss", description="...")
            class MyLoss(torch.nn.Module): ...

        Args:
            kind: Entry kind (``"method"``, ``"loss"``, ``"backbone"``, ``"transform"``, or a
                new kind).
            name: Lookup name.
            target: ``"module:attr"`` string (imported on first use) or the object.
            description: One-line description.
            overwrite: Replace an existing entry of the same name.

        Raises:
            DuplicateEntryError: If ``name`` exists under ``kind`` and ``overwrite`` is False.
        """
        if target is None:

            def decorator(obj: Any) -> Any:
                self.register(kind, name, obj, description, overwrite=overwrite)
                return obj

            return decorator
        if not isinstance(kind, str) or not kind or not isinstance(name, str) or not name:
            raise RegistryError(f"kind and name must be non-empty strings, got {kind!r}, {name!r}.")
        if isinstance(target, str) and not _is_target_string(target):
            raise RegistryError(
                f"target of {kind} {name!r} must look like 'package.module:attr', got {target!r}."
            )
        with self._lock:
            table = self._entries.setdefault(kind, {})
            if name in table and not overwrite:
                raise DuplicateEntryError(
                    f"{kind} {name!r} is already registered (-> {_describe(table[name].target)}); "
                    f"pass overwrite=True to replace it."
                )
            lines = description.strip().splitlines()
            table[name] = Entry(kind, name, target, lines[0] if lines else "")
        return target

    def entry(self, kind: str, name: str) -> Entry:
        """The :class:`Entry` registered as ``name`` under ``kind``.

        Raises:
            UnknownEntryError: If the kind or name is unknown (with close matches).
        """
        table = self._table(kind)
        found = table.get(name)
        if found is None:
            close = difflib.get_close_matches(str(name), table, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownEntryError(
                f"unknown {kind} {name!r}.{hint} Available: {', '.join(sorted(table)) or 'none'}."
            )
        return found

    def _table(self, kind: str) -> dict[str, Entry]:
        self._ensure_plugins()
        table = self._entries.get(kind)
        if table is None:
            close = difflib.get_close_matches(str(kind), self._entries, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownEntryError(
                f"unknown registry kind {kind!r}; kinds are {sorted(self._entries)}.{hint}"
            )
        return table

    def get(self, kind: str, name: str) -> Any:
        """The object registered as ``name`` under ``kind`` (imported on first use)."""
        return self.entry(kind, name).resolve()

    def create(self, kind: str, name: str, /, **kwargs: Any) -> Any:
        """Calls the registered object with ``kwargs`` (builds the loss, backbone, ...)."""
        return self.get(kind, name)(**kwargs)

    def list(self, kind: str | None = None) -> builtins.list[tuple[str, str, str]]:
        """Sorted ``(kind, name, description)`` of every entry, or of one kind."""
        self._ensure_plugins()
        kinds = [kind] if kind is not None else sorted(self._entries)
        return [
            (k, e.name, e.description)
            for k in kinds
            for e in sorted(self._table(k).values(), key=lambda e: e.name)
        ]

    def kinds(self) -> builtins.list[str]:
        """The registered kinds."""
        self._ensure_plugins()
        return sorted(self._entries)

    def __contains__(self, key: tuple[str, str]) -> bool:
        self._ensure_plugins()
        kind, name = key
        return name in self._entries.get(kind, {})

    def load_plugins(self, *, force: bool = False) -> builtins.list[str]:
        """Loads the ``lightly_topo.plugins`` entry points (once unless ``force``).

        Returns:
            Names of the plugins that loaded.
        """
        with self._lock:
            if self._plugins_loaded and not force:
                return []
            self._plugins_loaded = True
            loaded = []
            for ep in _plugin_entry_points():
                label = f"{ep.name!r} ({ep.value})"
                try:
                    plugin = ep.load()
                    if isinstance(plugin, types.ModuleType):
                        register = getattr(plugin, "register", None)
                        if not callable(register):
                            raise TypeError("the module has no register(registry) function")
                        register(self)
                    elif callable(plugin):
                        plugin(self)
                    else:
                        raise TypeError(f"it loads a {type(plugin).__name__}, not a callable")
                except Exception as exc:
                    warnings.warn(
                        f"lightly-topo plugin {label} from entry-point group {PLUGIN_GROUP!r} "
                        f"failed to load and was skipped: {type(exc).__name__}: {exc}",
                        PluginWarning,
                        stacklevel=3,
                    )
                else:
                    loaded.append(ep.name)
            return loaded

    def _ensure_plugins(self) -> None:
        if not self._plugins_loaded:
            self.load_plugins()


def _plugin_entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    try:
        return importlib.metadata.entry_points(group=PLUGIN_GROUP)
    except Exception as exc:
        warnings.warn(
            f"could not read the {PLUGIN_GROUP!r} entry points: {exc}", PluginWarning, stacklevel=4
        )
        return []


def _is_target_string(target: str) -> bool:
    module, sep, attr = target.partition(":")
    parts = module.split(".") + (attr.split(".") if attr else [])
    return bool(sep) and bool(attr) and all(p.isidentifier() for p in parts)


def _describe(target: str | object) -> str:
    if isinstance(target, str):
        return target
    return getattr(target, "__qualname__", type(target).__name__)


_BUILTINS: tuple[tuple[str, str, str, str], ...] = (
    # methods (Lightning modules)
    ("method", "simclr", "lightly_topo.methods:SimCLR3D", "SimCLR on 3D views (NT-Xent)."),
    ("method", "byol", "lightly_topo.methods:BYOL3D", "BYOL on 3D views (momentum teacher)."),
    (
        "method",
        "mae",
        "lightly_topo.methods:MAE3D",
        "MAE: token dropping on the 3D ViT, masked-input reconstruction on CNN / Swin.",
    ),
    (
        "method",
        "taco",
        "lightly_topo.methods:TACO",
        "TACO: masked reconstruction + 10 intra + 10 inter topology terms.",
    ),
    (
        "method",
        "simclr+topo",
        "lightly_topo.methods:SimCLRTopo3D",
        "SimCLR plus the TACO topology terms.",
    ),
    (
        "method",
        "byol+topo",
        "lightly_topo.methods:BYOLTopo3D",
        "BYOL plus the TACO topology terms.",
    ),
    ("method", "mae+topo", "lightly_topo.methods:MAETopo3D", "MAE plus the TACO topology terms."),
    (
        "method",
        "xmodal-simclr",
        "lightly_topo.methods:CrossModalSimCLR3D",
        "SimCLR with modalities of one subject as positives.",
    ),
    # losses: Lightly's
    (
        "loss",
        "ntxent",
        "lightly.loss:NTXentLoss",
        "Lightly NT-Xent contrastive loss (SimCLR, MoCo).",
    ),
    (
        "loss",
        "negcos",
        "lightly.loss:NegativeCosineSimilarity",
        "Lightly negative cosine similarity (BYOL, SimSiam).",
    ),
    ("loss", "dcl", "lightly.loss:DCLLoss", "Lightly decoupled contrastive loss."),
    ("loss", "dclw", "lightly.loss:DCLWLoss", "Lightly weighted decoupled contrastive loss."),
    (
        "loss",
        "barlowtwins",
        "lightly.loss:BarlowTwinsLoss",
        "Lightly Barlow Twins redundancy-reduction loss.",
    ),
    (
        "loss",
        "vicreg",
        "lightly.loss:VICRegLoss",
        "Lightly VICReg variance-invariance-covariance loss.",
    ),
    ("loss", "tico", "lightly.loss:TiCoLoss", "Lightly TiCo loss."),
    ("loss", "mmcr", "lightly.loss:MMCRLoss", "Lightly maximum manifold capacity loss."),
    ("loss", "dino", "lightly.loss:DINOLoss", "Lightly DINO self-distillation loss."),
    ("loss", "swav", "lightly.loss:SwaVLoss", "Lightly SwaV swapped-prediction loss."),
    ("loss", "mse", "torch.nn:MSELoss", "Mean squared error (MAE reconstruction)."),
    # losses: ours
    (
        "loss",
        "cross_modal_triplet",
        "lightly_topo.loss:CrossModalTripletLoss",
        "TACO cross-modal triplet loss over modalities of one subject.",
    ),
    (
        "loss",
        "pseudo_correspondence",
        "lightly_topo.loss:PseudoCorrespondenceLoss",
        "TACO pseudo-correspondence loss between matched tokens.",
    ),
    (
        "loss",
        "topo_align",
        "lightly_topo.loss:TopoAlignLoss",
        "TACO topological alignment loss of feature maps.",
    ),
    # backbones
    (
        "backbone",
        "swin",
        "lightly_topo.models.swin:SwinBackbone",
        "Swin-UNETR encoder (MONAI SwinTransformer); inputs divisible by 32.",
    ),
    (
        "backbone",
        "resenc",
        "lightly_topo.models.resenc:ResEncBackbone",
        "nnU-Net ResEnc-style residual 3D CNN; fast on CPU.",
    ),
    (
        "backbone",
        "vit",
        "lightly_topo.models.vit3d:ViT3D",
        "3D ViT with token dropping (MAE), Lightly MaskedVisionTransformer.",
    ),
    # view transforms
    (
        "transform",
        "simclr3d",
        "lightly_topo.transforms:SimCLRTransform3D",
        "Two strongly augmented 3D views.",
    ),
    (
        "transform",
        "byol3d",
        "lightly_topo.transforms:BYOLTransform3D",
        "Two asymmetric augmented 3D views.",
    ),
    (
        "transform",
        "mae3d",
        "lightly_topo.transforms:MAETransform3D",
        "One lightly augmented 3D crop for MAE.",
    ),
    (
        "transform",
        "topo3d",
        "lightly_topo.transforms:TopoTransform3D",
        "Views with voxel grids for the topology terms.",
    ),
)


def _default_registry() -> Registry:
    reg = Registry()
    for kind, name, target, description in _BUILTINS:
        reg.register(kind, name, target, description)
    return reg


#: The package-wide registry.
REGISTRY = _default_registry()


def register(
    kind: str,
    name: str,
    target: str | object | None = None,
    description: str = "",
    *,
    overwrite: bool = False,
) -> Any:
    """:meth:`Registry.register` on the package-wide registry."""
    return REGISTRY.register(kind, name, target, description, overwrite=overwrite)


def get(kind: str, name: str) -> Any:
    """:meth:`Registry.get` on the package-wide registry."""
    return REGISTRY.get(kind, name)


def create(kind: str, name: str, /, **kwargs: Any) -> Any:
    """:meth:`Registry.create` on the package-wide registry."""
    return REGISTRY.create(kind, name, **kwargs)


def entry(kind: str, name: str) -> Entry:
    """:meth:`Registry.entry` on the package-wide registry."""
    return REGISTRY.entry(kind, name)


def list(kind: str | None = None) -> builtins.list[tuple[str, str, str]]:
    """:meth:`Registry.list` on the package-wide registry."""
    return REGISTRY.list(kind)


def kinds() -> builtins.list[str]:
    """:meth:`Registry.kinds` on the package-wide registry."""
    return REGISTRY.kinds()


__all__ = [
    "KINDS",
    "PLUGIN_GROUP",
    "REGISTRY",
    "DuplicateEntryError",
    "Entry",
    "EntryResolutionError",
    "PluginWarning",
    "Registry",
    "RegistryError",
    "UnknownEntryError",
    "create",
    "entry",
    "get",
    "kinds",
    "list",
    "register",
]
