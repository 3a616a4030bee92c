"""Reader of nnssl / OpenMind-style pretraining JSON files."""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lightly_topo.data.errors import LayoutError, ManifestError, UnknownModalityError
from lightly_topo.data.modalities import normalize_modality
from lightly_topo.data.readers._common import add_image, parse_label, require_subjects
from lightly_topo.data.types import LabelValue, ModalityFile, Subject


def _items(node: Any, id_key: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Entries of a dict keyed by id, or of a list of dicts carrying ``id_key``."""
    if isinstance(node, Mapping):
        return [(str(k), v) for k, v in node.items()]
    return [(str(v.get(id_key, i)), v) for i, v in enumerate(node or [])]


def _resolve(raw: str, root: Path, source: Path) -> Path:
    if raw.startswith("$"):
        var, _, rest = raw[1:].partition("/")
        if var not in os.environ:
            raise ManifestError(
                f"{source}: path {raw!r} uses ${var}, which is not set in the environment"
            )
        return Path(os.environ[var]) / rest
    p = Path(raw)
    return p if p.is_absolute() else root / p


def _scalars(info: Any) -> dict[str, LabelValue]:
    out: dict[str, LabelValue] = {}
    if isinstance(info, Mapping):
        for k, v in info.items():
            if isinstance(v, str | int | float | bool):
                parsed = parse_label(v)
                if parsed is not None:
                    out[str(k)] = parsed
    return out


def read_nnssl_json(
    path: str | Path,
    on_unknown: str = "skip",
    on_duplicate: str = "first",
) -> list[Subject]:
    """Read an nnssl ``pretrain_data.json`` (the format of the OpenMind corpus).

    Structure: ``{"collection_name", "datasets": {<ds>: {"name", "subjects": {<sub>:
    {"subject_info", "sessions": {<ses>: {"session_info", "images": [{"name", "image_path",
    "modality", ...}]}}}}}}}``; ``subjects``/``sessions`` may also be lists of dicts carrying
    ``subject_id``/``session_id``. One :class:`~lightly_topo.data.Subject` per dataset, subject
    and session, with ``subject_id="<dataset>/<subject>"`` (subject ids repeat across datasets)
    and ``dataset`` set. Paths starting with ``$VAR/`` are resolved with the environment
    variable (as nnssl does, e.g. ``$nnssl_raw``), other relative paths against the JSON's
    folder. Scalar entries of ``subject_info`` and ``session_info`` become subject labels.
    Anatomy and anonymisation masks are not read.

    Args:
        path: The JSON file (or a folder holding ``pretrain_data.json``).
        on_unknown: ``"skip"`` (default): images of modalities outside the vocabulary
            (``MP2RAGE``, ``angio``, ...) are left out, with one warning counting them;
            ``"raise"``: raise :class:`~lightly_topo.data.errors.UnknownModalityError`.
        on_duplicate: ``"first"`` (default): of several images of one modality in a session,
            the first listed is used (one warning counts the others); ``"error"``: raise
            :class:`~lightly_topo.data.errors.ManifestError`.

    Raises:
        LayoutError: Not an nnssl JSON.
        ManifestError: Malformed entries, or an unset ``$VAR``.
        EmptyDatasetError: No image.
    """
    p = Path(path)
    json_path = p / "pretrain_data.json" if p.is_dir() else p
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, ValueError) as err:
        raise LayoutError(f"{json_path}: cannot read the nnssl JSON ({err})") from err
    if not isinstance(meta, Mapping) or "datasets" not in meta:
        raise LayoutError(f"{json_path}: no 'datasets' key; not an nnssl pretrain_data.json")
    root = json_path.parent
    skipped: Counter[str] = Counter()
    duplicates = 0
    subjects = []
    for ds_key, ds in _items(meta["datasets"], "dataset_index"):
        ds_name = str(ds.get("name") or ds.get("dataset_index") or ds_key)
        for sub_key, sub in _items(ds.get("subjects", {}), "subject_id"):
            sub_labels = _scalars(sub.get("subject_info"))
            for ses_key, ses in _items(sub.get("sessions", {}), "session_id"):
                subject = Subject(
                    f"{ds_key}/{sub_key}",
                    {},
                    session=ses_key,
                    labels={**sub_labels, **_scalars(ses.get("session_info"))},
                    dataset=ds_name,
                )
                for image in ses.get("images", []):
                    if (
                        not isinstance(image, Mapping)
                        or "image_path" not in image
                        or "modality" not in image
                    ):
                        raise ManifestError(
                            f"{json_path}: image entry {image!r} lacks image_path or modality"
                        )
                    try:
                        modality = normalize_modality(
                            str(image["modality"]), f"{json_path} ({image['image_path']})"
                        )
                    except UnknownModalityError:
                        if on_unknown == "raise":
                            raise
                        skipped[str(image["modality"])] += 1
                        continue
                    file = ModalityFile(
                        modality, _resolve(str(image["image_path"]), root, json_path)
                    )
                    if not add_image(subject.images, file, subject.key, on_duplicate=on_duplicate):
                        duplicates += 1
                if subject.images:
                    subjects.append(subject)
    if skipped:
        listing = ", ".join(f"{k} ({n})" for k, n in sorted(skipped.items()))
        warnings.warn(
            f"{json_path}: left out images of modalities outside the vocabulary: {listing}",
            stacklevel=2,
        )
    if duplicates:
        warnings.warn(
            f"{json_path}: {duplicates} image(s) repeat a modality within a session; the first listed was used",
            stacklevel=2,
        )
    return require_subjects(subjects, json_path, "nnssl (pretrain_data.json)")
