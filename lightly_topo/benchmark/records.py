"""Run records of a benchmark: one JSON file per run, written atomically, keyed by settings.

Each pretraining and each readout of a (method, seed) writes its record into ``OUT/runs/``;
a re-run reuses the records made with the same settings (their ``fingerprint``), so a crash
loses at most the run in progress.

>>> record_name("probes", "simclr+topo", 0)
'probes__simclr_topo__s0.json'
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from lightly_topo.benchmark.presets import Preset

logger = logging.getLogger("lightly_topo.benchmark")


def write_json_atomic(record: Any, path: Path) -> Path:
    """Write ``record`` as strict JSON to ``path`` atomically (temp file + rename)."""
    from lightly_topo.eval.tasks import _jsonable

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_jsonable(record), indent=1, allow_nan=False))
    os.replace(tmp, path)
    return path


def read_record(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The record at ``path`` if it exists, parses and was made with the same settings."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("ignoring unreadable record %s (%s); it is recomputed", path, error)
        return None
    if not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
        logger.info("record %s was made with other settings; it is recomputed", path)
        return None
    return record


def settings_fingerprint(preset: Preset, data: str | None) -> str:
    """Hash of every setting that changes a run's result (not the method list, the seeds,
    the time budget or the description)."""
    values = preset.to_dict()
    for key in ("name", "methods", "description", "seeds", "time_budget_s"):
        values.pop(key)
    values["data"] = data
    text = json.dumps(values, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_name(kind: str, method: str, seed: int, fold: int | None = None) -> str:
    """File name of a record, e.g. ``pretrain__simclr_topo__s0.json`` (``...__s0__f1.json``
    for fold 1 of a real set)."""
    suffix = "" if fold is None else f"__f{fold}"
    return f"{kind}__{method.replace('+', '_')}__s{seed}{suffix}.json"
