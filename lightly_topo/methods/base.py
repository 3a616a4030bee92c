"""The Lightning module every pretraining method derives from.

:class:`PretrainMethod` holds what all methods share: manual optimisation with a step that
is skipped (on every rank) when the loss is NaN or infinite, AdamW with weight decay off for
norms and biases, linear warm-up + cosine decay per step, gradient clipping, a per-step
reseeding of the random state (so a resumed run draws the same masks as an uninterrupted
one), logging of every loss component, and the detached tensors the monitoring callbacks
read (:attr:`PretrainMethod.step_outputs`).

A method implements :meth:`PretrainMethod.compute_loss` and names the view kind its data
needs (:attr:`PretrainMethod.view_kind`); :mod:`lightly_topo.methods.train` builds the
matching data pipeline.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.scheduler import CosineWarmupScheduler
from torch import Tensor, nn

from lightly_topo.methods.config import ConfigError, PretrainConfig, to_dict

#: What a method's batches hold (see :mod:`lightly_topo.methods.train`):
#: ``"simclr"``/``"byol"``: two spatial views of all modalities of a subject;
#: ``"mae"``: one view of all modalities; ``"pair"``: two modalities of a subject under one
#: spatial draw (:class:`~lightly_topo.transforms.TopoTransform3D`).
VIEW_KINDS = ("simclr", "byol", "mae", "pair")


class PretrainMethod(pl.LightningModule):
    """Base class of the pretraining methods (manual optimisation, see module docstring).

    Subclasses set the class attributes and implement :meth:`compute_loss`.

    Attributes:
        name: Registered name (e.g. ``"simclr"``).
        description: One line for ``lightly-topo list``.
        view_kind: One of :data:`VIEW_KINDS`.
        needs_pairs: The method needs two co-registered modalities per subject.
        uses_foreground: The method's views carry their brain ``foreground`` (topology terms).
        backbones: Backbone names the method supports.
        step_outputs: Detached tensors of the last step for the callbacks: ``"embedding"``
            ``(B, D)``, ``"pooled"`` ``(B, C)``, ``"valid_fraction"``, ``"probe_target"``.

    Args:
        config: The run's configuration.
        modality_names: The dataset's modality vocabulary.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    view_kind: ClassVar[str] = "simclr"
    needs_pairs: ClassVar[bool] = False
    uses_foreground: ClassVar[bool] = False
    backbones: ClassVar[tuple[str, ...]] = ("swin", "resenc", "vit")

    def __init__(self, config: PretrainConfig, modality_names: Sequence[str]) -> None:
        super().__init__()
        if config.model.backbone not in self.backbones:
            raise ConfigError(
                f"method {self.name!r} does not support backbone {config.model.backbone!r}; "
                f"use one of: {', '.join(self.backbones)}."
            )
        self.automatic_optimization = False
        self.config = config
        self.modality_names = tuple(modality_names)
        self.save_hyperparameters(
            {"config": to_dict(config), "modality_names": list(self.modality_names)}
        )
        self.batches_seen = 0
        self.nonfinite_in_row = 0
        self.nonfinite_total = 0
        self.step_outputs: dict[str, Any] = {}
        #: Batched device augmentation (``raw`` batches to views), set by the trainer
        #: builder when ``trainer.device_augment`` is on.
        self.device_augment: Any = None

    @classmethod
    def volumes_per_step(cls, batch_size: int, num_modalities: int) -> int:
        """Single-modality volumes a training step passes through the trained encoder.

        ``"simclr"``/``"byol"`` views: two views of every modality of ``batch_size``
        subjects; ``"mae"``: one view; ``"pair"``: two modalities of each of ``batch_size``
        subjects (a momentum encoder's forward passes are not counted). The benchmark gives
        every method the same budget of such volumes.
        """
        per_subject = {
            "simclr": 2 * num_modalities,
            "byol": 2 * num_modalities,
            "mae": num_modalities,
        }
        return batch_size * per_subject.get(cls.view_kind, 2)

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and its named components (detached or not) for one batch.

        Implementations also fill :attr:`step_outputs` with detached tensors.
        """

    @property
    @abstractmethod
    def encoder(self) -> nn.Module:
        """The backbone exported at the end of pretraining."""

    def after_optimizer_step(self) -> None:
        """Hook run after every optimizer step (momentum updates)."""

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and "raw" in batch:
            if self.device_augment is None:
                raise RuntimeError(
                    "the batch holds raw volumes but the method has no device augmentation; "
                    "set trainer.device_augment consistently."
                )
            batch = self.device_augment(batch, with_foreground=self.uses_foreground)
        return batch

    # ----------------------------------------------------------------- training step
    def step_seed(self) -> int:
        """Seed of the random state of the current step: depends on the run seed, the
        number of batches seen (restored on resume) and the rank only."""
        return (
            self.config.trainer.seed * 1_000_003 + self.batches_seen * 7_919 + self.global_rank
        ) % (2**63 - 1)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        torch.manual_seed(self.step_seed())
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        self.step_outputs = {}
        loss, parts = self.compute_loss(batch)
        self.batches_seen += 1
        if not self._finite_on_all_ranks(loss):
            self.nonfinite_in_row += 1
            self.nonfinite_total += 1
            self.log("train/nonfinite_skipped", float(self.nonfinite_total), batch_size=1)
            return None
        self.nonfinite_in_row = 0
        assert isinstance(optimizer, pl.core.optimizer.LightningOptimizer)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.config.optim.grad_clip is not None:
            self.clip_gradients(
                optimizer.optimizer,
                gradient_clip_val=self.config.optim.grad_clip,
                gradient_clip_algorithm="norm",
            )
        optimizer.step()
        lr = float(optimizer.param_groups[0]["lr"])
        if scheduler is not None:
            assert not isinstance(scheduler, list)
            scheduler.step()
        self.after_optimizer_step()
        batch_size = self.batch_size(batch)
        logs = {"train/loss": loss.detach().float()}
        logs.update({f"train/{k}": v.detach().float() for k, v in parts.items()})
        self.log_dict(logs, prog_bar=False, batch_size=batch_size)
        # The progress bar shows the loss and its components under short names.
        bar = {"loss": loss.detach().float()}
        bar.update({k: v.detach().float() for k, v in parts.items() if v.numel() == 1})
        self.log_dict(bar, prog_bar=True, logger=False, batch_size=batch_size)
        self.log("train/lr", lr, batch_size=1)
        self.log("train/nonfinite_skipped", float(self.nonfinite_total), batch_size=1)
        return loss.detach()

    def _finite_on_all_ranks(self, loss: Tensor) -> bool:
        finite = torch.isfinite(loss.detach()).all().to(torch.float32).reshape(1)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item() > 0)

    @staticmethod
    def batch_size(batch: dict[str, Any]) -> int:
        """Number of subjects in a batch."""
        return len(batch["subject_id"])

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        optim = self.config.optim
        decay, no_decay = get_weight_decay_parameters([self])
        decay = [p for p in decay if p.requires_grad]
        no_decay = [p for p in no_decay if p.requires_grad]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=optim.lr,
            betas=optim.betas,
        )
        scheduler = CosineWarmupScheduler(
            optimizer,
            warmup_epochs=optim.warmup_steps,
            max_epochs=self.config.trainer.max_steps,
            end_value=optim.min_lr_ratio,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_train_start(self) -> None:
        # A resumed run may extend trainer.max_steps: the restored schedule follows it.
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, CosineWarmupScheduler):
            scheduler.max_epochs = self.config.trainer.max_steps
            scheduler.warmup_epochs = self.config.optim.warmup_steps

    # ----------------------------------------------------------------- checkpoint state
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lightly_topo"] = {
            "method": self.name,
            "batches_seen": self.batches_seen,
            "nonfinite_total": self.nonfinite_total,
            "nonfinite_in_row": self.nonfinite_in_row,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("lightly_topo", {})
        self.batches_seen = int(state.get("batches_seen", 0))
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        self.nonfinite_in_row = int(state.get("nonfinite_in_row", 0))
