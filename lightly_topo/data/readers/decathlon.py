"""Reader of Medical Segmentation Decathlon (and nnU-Net v2) ``dataset.json`` folders."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightly_topo.data.errors import LayoutError, ManifestError
from lightly_topo.data.modalities import normalize_modality
from lightly_topo.data.readers._common import nifti_stem, require_subjects
from lightly_topo.data.types import ModalityFile, Subject


def _modality_names(
    spec: Mapping[str, Any], source: str, modality_map: Mapping[str, str] | None
) -> dict[int, str]:
    out: dict[int, str] = {}
    for key, name in spec.items():
        try:
            index = int(key)
        except ValueError as err:
            raise ManifestError(f"{source}: channel key {key!r} is not an integer") from err
        raw = str(name)
        canonical = normalize_modality((modality_map or {}).get(raw, raw), source)
        if canonical in out.values():
            raise ManifestError(f"{source}: two channels map to modality {canonical!r}")
        out[index] = canonical
    if not out:
        raise ManifestError(f"{source}: empty modality map")
    return out


def read_decathlon(
    path: str | Path,
    include_test: bool = False,
    modality_map: Mapping[str, str] | None = None,
) -> list[Subject]:
    """Read a Medical Segmentation Decathlon task folder (or its ``dataset.json``).

    The JSON's ``modality`` map (``{"0": "FLAIR", "1": "T1w", ...}``) names the channels of the
    4D images listed under ``training`` (``{"image": ..., "label": ...}``); each channel becomes
    one :class:`~lightly_topo.data.ModalityFile` with ``channel`` set (a single-modality task's
    3D images have ``channel=None``). The subject id is the image file name without extension.
    nnU-Net v2 folders (``channel_names`` in ``dataset.json``, one file per channel
    ``imagesTr/<case>_<XXXX>.nii.gz``) are read too.

    Args:
        path: The task folder or its ``dataset.json``.
        include_test: Also read the ``test`` images (no label maps).
        modality_map: Renames of raw channel names that the vocabulary cannot place,
            e.g. ``{"MRI": "t1"}``.

    Raises:
        LayoutError: No ``dataset.json`` or a JSON of another kind.
        ManifestError: Bad channel keys or entries.
        UnknownModalityError: A channel name the vocabulary cannot place (use ``modality_map``).
        EmptyDatasetError: No cases.
    """
    p = Path(path)
    json_path = p / "dataset.json" if p.is_dir() else p
    if not json_path.is_file():
        raise LayoutError(f"{json_path}: no dataset.json (Medical Segmentation Decathlon layout)")
    root = json_path.parent
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, ValueError) as err:
        raise ManifestError(f"{json_path}: cannot parse the JSON ({err})") from err
    if "channel_names" in meta:
        return _read_nnunet_v2(json_path, meta, modality_map)
    if "modality" not in meta or "training" not in meta:
        raise LayoutError(
            f"{json_path}: no 'modality' and 'training' keys; not a Decathlon dataset.json"
        )
    channels = _modality_names(meta["modality"], str(json_path), modality_map)
    entries: list[tuple[str, str | None]] = []
    for e in meta["training"]:
        if not isinstance(e, Mapping) or "image" not in e:
            raise ManifestError(f"{json_path}: training entry {e!r} has no 'image'")
        entries.append((e["image"], e.get("label")))
    if include_test:
        entries += [(e if isinstance(e, str) else e["image"], None) for e in meta.get("test", [])]
    subjects = []
    seen: set[str] = set()
    for image, label in entries:
        file = Path(os.path.normpath(root / image))
        sid = nifti_stem(file.name) or file.name
        if sid in seen:
            raise ManifestError(f"{json_path}: case {sid!r} listed twice")
        seen.add(sid)
        multi = len(channels) > 1
        images = {
            m: ModalityFile(m, file, i if multi else None) for i, m in sorted(channels.items())
        }
        label_map = None if label is None else Path(os.path.normpath(root / label))
        subjects.append(
            Subject(sid, images, label_map=label_map, dataset=str(meta.get("name", root.name)))
        )
    return require_subjects(subjects, json_path, "decathlon (dataset.json 'training')")


def _read_nnunet_v2(
    json_path: Path, meta: Mapping[str, Any], modality_map: Mapping[str, str] | None
) -> list[Subject]:
    root = json_path.parent
    channels = _modality_names(meta["channel_names"], str(json_path), modality_map)
    ending = str(meta.get("file_ending", ".nii.gz"))
    pattern = re.compile(rf"^(?P<case>.+)_(?P<ch>\d{{4}}){re.escape(ending)}$")
    cases: dict[str, dict[str, ModalityFile]] = {}
    folder = root / "imagesTr"
    if not folder.is_dir():
        raise LayoutError(f"{folder}: missing (nnU-Net v2 layout)")
    for file in sorted(folder.iterdir()):
        m = pattern.match(file.name)
        if m is None:
            continue
        ch = int(m.group("ch"))
        if ch not in channels:
            raise ManifestError(f"{file}: channel {ch} not in channel_names of {json_path}")
        cases.setdefault(m.group("case"), {})[channels[ch]] = ModalityFile(channels[ch], file)
    subjects = []
    for case, images in cases.items():
        label = root / "labelsTr" / f"{case}{ending}"
        subjects.append(
            Subject(
                case,
                images,
                label_map=label if label.is_file() else None,
                dataset=str(meta.get("name", root.name)),
            )
        )
    return require_subjects(subjects, json_path, "nnU-Net v2 (imagesTr/<case>_<XXXX>)")
