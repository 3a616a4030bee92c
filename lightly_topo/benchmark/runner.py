"""The benchmark run: pretrain every method and control per seed, probe each encoder, report.

For every seed ``s`` and method ``m``:

1. **Pretrain** ``m`` with seed ``s`` on the synthetic pretraining subjects (never a
   downstream subject), for the preset's budget of encoded volumes
   (:mod:`lightly_topo.benchmark.pretraining`); ``scratch`` is the seed's initialisation
   itself, ``supervised`` the positive control.
2. **Probe** the frozen encoder on the downstream subjects
   (:mod:`lightly_topo.benchmark.probing`): dense linear probes for parcellation and
   lesions (per modality, fused, every modality subset), linear and kNN probes of the
   subject labels.

The raw-intensity floor (the same probes on the input intensities) is probed once per
seed. Every step writes a JSON record atomically into ``OUT/runs/``; a re-run reuses the
records made with the same settings, so a crash loses at most the run in progress. The
report (:mod:`lightly_topo.benchmark.report`) opens with the instrument check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lightly_topo.benchmark.datasets import (
    ProbeSet,
    labelled_volumes,
    pretraining_brains,
    pretraining_table,
    synthetic_probe_set,
)
from lightly_topo.benchmark.presets import INTENSITY, Preset
from lightly_topo.benchmark.records import (
    read_record,
    record_name,
    settings_fingerprint,
    write_json_atomic,
)
from lightly_topo.errors import LightlyTopoError

logger = logging.getLogger("lightly_topo.benchmark")


class BenchmarkError(LightlyTopoError, ValueError):
    """Data or settings the benchmark cannot run on (the message says what to change)."""


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` produced.

    Attributes:
        out: The output folder.
        records: Every run record (pretraining and probes), as written in ``OUT/runs``.
        files: The report files written (Markdown, CSV, JSON, PNG).
        wall_s: Wall time of this call.
        reused: Number of records found on disk and reused.
        instrument_passed: Whether the instrument check passed (the run can rank methods).
    """

    out: Path
    records: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)
    wall_s: float = 0.0
    reused: int = 0
    instrument_passed: bool = False


def resolve_device(preset: Preset) -> str:
    """``"cuda"`` or ``"cpu"``; ``"cuda"`` without a GPU raises :class:`BenchmarkError`."""
    if preset.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preset.device == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("device 'cuda' requested but torch sees no CUDA GPU; use cpu or auto")
    return preset.device


class threads:
    """Use ``count`` torch CPU threads inside the block (``None``: leave them)."""

    def __init__(self, count: int | None) -> None:
        self.count = count
        self.before = torch.get_num_threads()

    def __enter__(self) -> None:
        self.before = torch.get_num_threads()
        if self.count is not None:
            torch.set_num_threads(self.count)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.before)


def seed_everything(seed: int) -> None:
    """Seed torch, NumPy and Python for one run (each run seeds its own generators too)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global state libraries may draw from)
    torch.manual_seed(seed)


def run_benchmark(
    preset: Preset,
    out: str | Path,
    data: str | Path | None = None,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchmarkResult:
    """Run (or resume) the benchmark and write its report.

    Args:
        preset: The settings (:func:`~lightly_topo.benchmark.presets.get_preset`).
        out: Output folder: ``results.md``, ``results.csv``, ``results.json``, ``*.png``,
            ``runs/`` (one JSON record per run) and ``pretrain/`` (checkpoints).
        data: A real dataset folder for the downstream probes; ``None``: synthetic brains.
        command: The command line recorded in the outputs.
        progress: Called with a line per finished run (default: logged).

    Returns:
        The :class:`BenchmarkResult`.

    Raises:
        BenchmarkError: A run that cannot fit its time budget, data without what the probes
            need, or ``cuda`` without a GPU.
    """
    with threads(preset.cpu_threads):
        return _run(preset, out, data, command, progress)


def _probe_set(preset: Preset, data: str | None) -> ProbeSet:
    if data is None:
        return synthetic_probe_set(preset)
    from lightly_topo.benchmark.real_data import RealDataError, real_probe_set
    from lightly_topo.data.errors import DataError

    try:
        return real_probe_set(preset, data)
    except (RealDataError, DataError) as error:
        raise BenchmarkError(
            f"--data {data}: {error}" if str(data) not in str(error) else str(error)
        ) from error


class _Run:
    """State of one benchmark run: the records on disk and what is built once."""

    def __init__(
        self, preset: Preset, out: Path, data: str | None, say: Callable[[str], None]
    ) -> None:
        self.preset, self.out, self.say = preset, out, say
        self.device = resolve_device(preset)
        self.real = data is not None
        self.probes = _probe_set(preset, data)
        self.modalities = self.probes.modality_names
        self.fingerprint = settings_fingerprint(preset, data)
        self.runs = out / "runs"
        self.records: list[dict[str, Any]] = []
        self.reused = 0
        self.brains = None if self.real else pretraining_brains(preset)
        self._tables: dict[int | None, Any] = {}
        self._labelled: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def folds(self) -> list[int | None]:
        """The folds of the run: ``[None]`` on the synthetic brains (one split)."""
        return list(range(len(self.probes.splits()))) if self.real else [None]

    def cached(self, name: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The record ``name`` from disk if it was made with these settings, else made,
        written atomically and announced."""
        path = self.runs / name
        record = read_record(path, self.fingerprint)
        if (
            record is not None
            and "encoder" in record
            and not (self.out / record["encoder"]).is_file()
        ):
            record = None
        if record is not None:
            self.reused += 1
        else:
            record = make()
            record["fingerprint"] = self.fingerprint
            write_json_atomic(record, path)
            self.say(_line(record))
        self.records.append(record)
        return record

    def pretrain(self, method: str, seed: int, fold: int | None) -> dict[str, Any]:
        return self.cached(
            record_name("pretrain", method, seed, fold),
            lambda: self._pretrain(method, seed, fold),
        )

    def _table(self, fold: int | None) -> Any:
        if fold not in self._tables:
            if self.real:
                from lightly_topo.benchmark.real_data import fold_table

                self._tables[fold] = fold_table(self.probes, self.probes.splits()[fold or 0][0])
            else:
                self._tables[fold] = pretraining_table(self.brains)
        return self._tables[fold]

    def _supervised_data(self, fold: int | None) -> tuple[Any, Any, Any, str, float]:
        """Images, voxel labels, availability, description and spacing of the positive
        control's training subjects (a fold's training subjects on a real set)."""
        if fold is not None:
            train = self.probes.splits()[fold][0]
            grid = self.probes.grid
            return (
                [self.probes.images[i] for i in train],
                [self.probes.targets[i] for i in train],
                self.probes.masks[train],
                f"voxel labels of the {len(train)} training subjects of fold {fold}",
                float(min(grid.spacing)) if grid is not None else 1.0,
            )
        if self._labelled is None:
            self._labelled = labelled_volumes(self.brains)
        images, labels = self._labelled
        return (
            images,
            labels,
            None,
            f"{len(self.brains)} synthetic pretraining brains with their voxel labels "  # type: ignore[arg-type]
            "(parcellation + lesion)",
            self.preset.synthetic_fov_mm / self.preset.synthetic_size,
        )

    def _pretrain(self, method: str, seed: int, fold: int | None) -> dict[str, Any]:
        from lightly_topo.benchmark.pretraining import run_pretrain, run_supervised

        seed_everything(seed)
        if method != "supervised":
            return run_pretrain(
                self.preset, method, seed, self.out, self._table(fold), self.device, fold
            )
        images, labels, masks, described, spacing = self._supervised_data(fold)
        return run_supervised(
            self.preset,
            seed,
            self.out,
            images,
            labels,
            len(self.probes.class_names),
            self.modalities,
            spacing,
            self.device,
            described,
            fold,
            masks,
        )

    def probe(self, method: str, seed: int, fold: int | None, encoder: Path | str | None) -> None:
        """Probe the encoder at ``encoder`` (a checkpoint), ``None`` (the seed's scratch
        weights) or :data:`INTENSITY` (the raw-intensity floor) on ``fold``."""
        self.cached(
            record_name("probes", method, seed, fold),
            lambda: self._probe(method, seed, fold, encoder),
        )

    def _probe(
        self, method: str, seed: int, fold: int | None, encoder: Path | str | None
    ) -> dict[str, Any]:
        from lightly_topo.benchmark.pretraining import scratch_encoder
        from lightly_topo.benchmark.probing import run_probes
        from lightly_topo.eval.features import IntensityEncoder
        from lightly_topo.eval.tasks import load_encoder

        seed_everything(seed)
        if encoder == INTENSITY:
            model: Any = IntensityEncoder(len(self.modalities))
        elif encoder is None:
            model = scratch_encoder(self.preset, self.modalities, seed)
        else:
            model = load_encoder(encoder, self.modalities, map_location="cpu").eval()
        start, cpu = time.perf_counter(), time.process_time()
        with threads(self.preset.probe_threads):
            result = run_probes(model, self.probes.split(fold), seed, self.preset)
        return {
            "kind": "probes",
            "method": method,
            "seed": seed,
            "fold": fold,
            "status": "ok",
            "wall_s": time.perf_counter() - start,
            "cpu_s": time.process_time() - cpu,
            "result": result,
        }


def _run(
    preset: Preset,
    out: str | Path,
    data: str | Path | None,
    command: str | None,
    progress: Callable[[str], None] | None,
) -> BenchmarkResult:
    from lightly_topo.benchmark import report
    from lightly_topo.benchmark.budget import check_budget
    from lightly_topo.benchmark.provenance import provenance

    started = time.perf_counter()
    say = progress or logger.info
    out = Path(out).expanduser()
    data_str = None if data is None else str(Path(data).expanduser())
    run = _Run(preset, out, data_str, say)
    estimate = check_budget(preset, run.device, run.probes if run.real else None)
    say(f"estimated wall time {estimate:.0f} s (budget {_budget(preset, run)})")
    run.runs.mkdir(parents=True, exist_ok=True)
    for seed in preset.seeds:
        for fold in run.folds:
            run.probe(INTENSITY, seed, fold, INTENSITY)
            for method in preset.methods:
                if method == "scratch":
                    run.probe(method, seed, fold, None)
                    continue
                record = run.pretrain(method, seed, fold)
                if record.get("status") == "ok":
                    run.probe(method, seed, fold, out / record["encoder"])
    wall = time.perf_counter() - started
    meta = provenance(command)
    meta.update(
        preset=preset.to_dict(),
        data=data_str or "synthetic",
        device=run.device,
        seeds=list(preset.seeds),
        wall_s=wall,
        estimated_s=estimate,
        records_reused=run.reused,
        design=design_statement(preset, run.probes, run.brains),
    )
    files, passed = report.write_report(out, run.records, meta)
    return BenchmarkResult(
        out=out,
        records=run.records,
        files=files,
        wall_s=wall,
        reused=run.reused,
        instrument_passed=passed,
    )


def _budget(preset: Preset, run: _Run) -> str:
    if preset.time_budget_s is None:
        return "none"
    if run.real:
        return (
            f"{preset.time_budget_s * len(run.folds):.0f} s: {preset.time_budget_s:.0f} s per fold"
        )
    return f"{preset.time_budget_s:.0f} s"


def design_statement(preset: Preset, probes: ProbeSet, brains: Any) -> str:
    """One paragraph on which subjects were used for what (written into the report)."""
    from lightly_topo.benchmark.pretraining import SUPERVISED_LR

    budget = (
        f"Every method gets {preset.pretrain_volumes} encoded single-modality volumes "
        f"({preset.crop_size}^3 views, batch {preset.pretrain_batch_size}, AdamW lr "
        f"{preset.pretrain_lr}, no learning-rate sweep); the positive control "
        f"{preset.supervised_volumes or preset.pretrain_volumes} volumes at lr "
        f"{SUPERVISED_LR}."
    )
    encoders = "Encoders are frozen."
    if brains is None:
        return (
            f"Real data: {probes.description}. Per fold, every method pretrains on the "
            "images of the fold's training subjects only (no labels; the positive control on "
            f"their voxel labels), and the probes are fitted on the same subjects; subjects "
            f"keep their own shapes, so views are cut per subject (no batched device "
            f"augmentation). {budget} "
            f"Dense probes fitted on voxels of up to {preset.probe_dense_train_subjects} "
            f"training subjects per fold and scored on up to "
            f"{preset.probe_dense_test_subjects} test subjects per fold. {encoders}"
        )
    return (
        f"Pretraining: {len(brains)} synthetic brains of {preset.synthetic_size}^3 (seed "
        f"{brains.seed}), the same for every method and seed; no downstream subject is seen in "
        f"pretraining. {budget} Downstream: {probes.description}; "
        f"dense probes fitted on voxels of the first "
        f"{min(preset.probe_dense_train_subjects, len(probes.train))} fitting subjects and "
        f"scored on the first {min(preset.probe_dense_test_subjects, len(probes.test))} test "
        f"subjects, subject-label probes fitted and scored on all. {encoders}"
    )


def _line(record: dict[str, Any]) -> str:
    what = record.get("kind", "?")
    status = record.get("status", "ok")
    wall = record.get("wall_s")
    timing = f" in {wall:.1f} s" if isinstance(wall, float) else ""
    fold = "" if record.get("fold") is None else f" fold {record['fold']}"
    return f"{what:<9} {record['method']:<14} seed {record['seed']}{fold}: {status}{timing}"


__all__ = ["BenchmarkError", "BenchmarkResult", "run_benchmark"]
