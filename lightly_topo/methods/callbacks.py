"""Training infrastructure around the methods: atomic checkpoints, non-finite guard, monitors.

* :class:`AtomicCheckpointIO`: Lightning ``CheckpointIO`` writing a temporary file in the
  target folder, ``fsync``-ing it and moving it into place with ``os.replace``, so a crash
  never leaves a truncated checkpoint.
* :class:`NonFiniteGuard`: stops the run (with :class:`NonFiniteLossError`) after a number of
  non-finite losses in a row; the methods skip each such step themselves.
* :class:`CollapseMonitor`: logs embedding std, effective rank and the fraction of valid
  (matched) tokens.
* :class:`ThroughputMonitor`: step time, data-wait time and samples per second.
* :class:`OnlineLinearProbe`: a linear classifier on detached pooled features, trained
  alongside, its accuracy logged.

Every method exposes the detached tensors these callbacks read in ``pl_module.step_outputs``
(see :class:`lightly_topo.methods.base.PretrainMethod`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO
from torch import Tensor, nn

from lightly_topo.errors import LightlyTopoError
from lightly_topo.loss import monitors


class NonFiniteLossError(LightlyTopoError, RuntimeError):
    """Too many non-finite (NaN or Inf) losses in a row: the run diverged."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint IO that writes atomically: temp file in the same folder, fsync, os.replace.

    Example:
        >>> import tempfile, pathlib
        >>> io = AtomicCheckpointIO()
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> io.save_checkpoint({"step": 1}, folder / "last.ckpt")
        >>> io.load_checkpoint(folder / "last.ckpt", weights_only=False)["step"]
        1
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options.")
        atomic_torch_save(checkpoint, Path(path))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (temp file in the same folder + fsync + replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


class NonFiniteGuard(pl.Callback):
    """Stop the run after ``max_in_row`` non-finite losses in a row.

    The method skips a step whose loss is NaN or infinite (on any rank) and counts it in
    ``pl_module.nonfinite_in_row`` and ``pl_module.nonfinite_total``; this callback logs the
    total and raises :class:`NonFiniteLossError` when the streak reaches ``max_in_row``.

    Args:
        max_in_row: Number of consecutive non-finite losses that stops the run.
    """

    def __init__(self, max_in_row: int = 5) -> None:
        if max_in_row < 1:
            raise ValueError(f"max_in_row must be at least 1, got {max_in_row}.")
        self.max_in_row = max_in_row

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        in_row = int(getattr(pl_module, "nonfinite_in_row", 0))
        if in_row >= self.max_in_row:
            total = int(getattr(pl_module, "nonfinite_total", 0))
            raise NonFiniteLossError(
                f"the loss was NaN or infinite in {in_row} steps in a row (at step "
                f"{trainer.global_step}, {total} skipped in all); the run stopped. Lower "
                "optim.lr, enable optim.grad_clip, use precision 32, or check the data for "
                "NaN voxels; raise trainer.max_nonfinite to tolerate longer streaks."
            )


class CollapseMonitor(pl.Callback):
    """Log collapse indicators every ``every_n_steps`` steps.

    Reads ``pl_module.step_outputs``: ``"embedding"`` ``(B, D)`` (pooled or projected),
    optionally ``"valid_fraction"`` (fraction of tokens that are valid / matched between the
    views) and ``"matched_fraction"`` (mutual-nearest-neighbour fraction of the topology
    loss). Logs ``monitor/embedding_std`` and ``monitor/effective_rank``
    (:mod:`lightly_topo.loss.monitors`; the rank normalised by ``min(B, D)`` in
    ``monitor/effective_rank_ratio``), ``monitor/valid_token_fraction`` and
    ``monitor/matched_fraction``.

    Args:
        every_n_steps: Logging period in optimizer steps.
    """

    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = max(1, int(every_n_steps))

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        step_outputs: dict[str, Any] = getattr(pl_module, "step_outputs", {})
        embedding = step_outputs.get("embedding")
        values: dict[str, float] = {}
        if isinstance(embedding, Tensor) and embedding.ndim == 2 and embedding.shape[0] > 1:
            with torch.no_grad():
                values["monitor/embedding_std"] = float(monitors.embedding_std(embedding))
                rank = float(monitors.effective_rank(embedding))
                values["monitor/effective_rank"] = rank
                values["monitor/effective_rank_ratio"] = rank / min(embedding.shape)
        if "valid_fraction" in step_outputs:
            values["monitor/valid_token_fraction"] = float(step_outputs["valid_fraction"])
        if "matched_fraction" in step_outputs:
            values["monitor/matched_fraction"] = float(step_outputs["matched_fraction"])
        if values:
            pl_module.log_dict(values, on_step=True, on_epoch=False, batch_size=1)


class ThroughputMonitor(pl.Callback):
    """Log step time, time spent waiting for data, and samples per second.

    The data wait of a step is the time between the end of the previous step and the start
    of this one (the data loader's ``next`` and the host-to-device copy); the step time is
    from the start of the step to its end. Logs ``perf/step_s``, ``perf/data_wait_s``,
    ``perf/data_wait_fraction`` and ``perf/samples_per_s`` (the last also on the progress
    bar as ``samples/s``). :attr:`history` keeps ``(step_s, data_wait_s)`` of every step.
    """

    def __init__(self) -> None:
        self._last_end: float | None = None
        self._start = 0.0
        self.history: list[tuple[float, float]] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._start = time.perf_counter()
        self._wait = 0.0 if self._last_end is None else self._start - self._last_end

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        end = time.perf_counter()
        step = end - self._start
        self._last_end = end
        self.history.append((step, self._wait))
        size = len(batch["subject_id"]) if isinstance(batch, dict) and "subject_id" in batch else 1
        total = step + self._wait
        rate = size / total if total > 0 else 0.0
        pl_module.log_dict(
            {
                "perf/step_s": step,
                "perf/data_wait_s": self._wait,
                "perf/data_wait_fraction": self._wait / total if total > 0 else 0.0,
                "perf/samples_per_s": rate,
            },
            on_step=True,
            on_epoch=False,
            batch_size=1,
        )
        pl_module.log(
            "samples/s",
            rate,
            prog_bar=True,
            logger=False,
            on_step=True,
            on_epoch=False,
            batch_size=1,
        )


class OnlineLinearProbe(pl.Callback):
    """A linear classifier on detached pooled features, trained alongside pretraining.

    Reads ``pl_module.step_outputs["pooled"]`` ``(B, C)`` and ``["probe_target"]`` (int64
    ``(B,)``, ``-1`` where the subject has no label) and takes one Adam step per training step
    on the cross-entropy. Logs ``probe/loss`` and ``probe/accuracy`` (accuracy on the batch
    before the update, i.e. on features the probe has not been fitted to yet). Its state is
    saved in checkpoints, so resumed runs continue it exactly.

    Args:
        num_classes: Number of classes of the probed label.
        class_names: Names of the classes (for logs and checkpoints).
        lr: Learning rate of the probe.
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] = (), lr: float = 1e-3) -> None:
        if num_classes < 2:
            raise ValueError(f"the linear probe needs at least 2 classes, got {num_classes}.")
        self.num_classes = int(num_classes)
        self.class_names = tuple(class_names)
        self.lr = lr
        self.probe: nn.Linear | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._pending_state: dict[str, Any] | None = None

    def _build(self, in_features: int, device: torch.device) -> None:
        self.probe = nn.Linear(in_features, self.num_classes).to(device)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            bound = 1.0 / in_features**0.5
            weight = torch.rand(self.probe.weight.shape, generator=generator) * 2 - 1
            self.probe.weight.copy_(weight * bound)
            self.probe.bias.zero_()
        self.optimizer = torch.optim.Adam(self.probe.parameters(), lr=self.lr)
        if self._pending_state is not None:
            self.probe.load_state_dict(self._pending_state["probe"])
            self.optimizer.load_state_dict(self._pending_state["optimizer"])
            self._pending_state = None

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step_outputs: dict[str, Any] = getattr(pl_module, "step_outputs", {})
        pooled = step_outputs.get("pooled")
        target = step_outputs.get("probe_target")
        if not isinstance(pooled, Tensor) or not isinstance(target, Tensor):
            return
        keep = target >= 0
        if not bool(keep.any()):
            return
        features = pooled.detach().float()[keep]
        target = target.to(features.device)[keep]
        if self.probe is None:
            self._build(features.shape[1], features.device)
        assert self.probe is not None and self.optimizer is not None
        with torch.enable_grad():
            logits = self.probe(features)
            loss = nn.functional.cross_entropy(logits, target)
            accuracy = (logits.argmax(dim=1) == target).float().mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        pl_module.log_dict(
            {"probe/loss": float(loss.detach()), "probe/accuracy": float(accuracy)},
            on_step=True,
            on_epoch=False,
            batch_size=int(keep.sum()),
        )

    def state_dict(self) -> dict[str, Any]:
        if self.probe is None or self.optimizer is None:
            return dict(self._pending_state) if self._pending_state else {}
        return {
            "probe": self.probe.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "class_names": list(self.class_names),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        if self.probe is not None and self.optimizer is not None:
            self.probe.load_state_dict(state_dict["probe"])
            self.optimizer.load_state_dict(state_dict["optimizer"])
        else:
            self._pending_state = dict(state_dict)
