"""Training infrastructure: end to end, exact resume, non-finite skipping, bad input, DDP."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from tiny_setup import tiny_config

from lightly_topo import registry
from lightly_topo.data.errors import EmptyDatasetError
from lightly_topo.methods import ConfigError, NonFiniteLossError, SimCLR3D
from lightly_topo.methods.train import build, pretrain


class StopAtStep(pl.Callback):
    """Interrupts a run after ``step`` optimizer steps (as a crash would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


class NaNSimCLR(SimCLR3D):
    """SimCLR whose loss is NaN at the batches listed in ``nan_batches`` (all if empty)."""

    name = "nan-simclr-test"
    nan_batches: tuple[int, ...] = (0, 1)

    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, parts = super().compute_loss(batch)
        if not self.nan_batches or self.batches_seen in self.nan_batches:
            loss = loss * float("nan")
        return loss, parts


class AlwaysNaNSimCLR(NaNSimCLR):
    name = "always-nan-simclr-test"
    nan_batches = ()


registry.register("method", NaNSimCLR.name, NaNSimCLR, "test only", overwrite=True)
registry.register("method", AlwaysNaNSimCLR.name, AlwaysNaNSimCLR, "test only", overwrite=True)


def test_pretrain_writes_checkpoints_logs_and_encoder(tmp_path: Path) -> None:
    from lightly_topo.checkpoint import load_pretrained

    config = tiny_config("simclr")
    config.out = str(tmp_path / "run")
    config.trainer.max_steps = 2
    result = pretrain(config)
    assert [step for step, _ in result.losses] == [1, 2]
    assert all(math.isfinite(loss) for _, loss in result.losses)
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert checkpoints == ["last.ckpt", "step-1.ckpt", "step-2.ckpt"]
    assert not list((tmp_path / "run" / "checkpoints").glob(".*tmp"))
    metrics = tmp_path / "run" / "logs" / "csv" / "version_0" / "metrics.csv"
    rows = list(csv.DictReader(metrics.open()))
    columns = set(rows[0])
    for key in (
        "train/loss",
        "train/ntxent",
        "monitor/embedding_std",
        "monitor/effective_rank",
        "perf/samples_per_s",
        "perf/data_wait_s",
        "probe/accuracy",
    ):
        assert key in columns, key
    assert list((tmp_path / "run" / "logs" / "tensorboard").glob("version_0/events.out.tfevents*"))
    loaded = load_pretrained(result.encoder_path)
    assert loaded.metadata["method"] == "simclr"
    assert loaded.metadata["modalities"] == ["t1", "t2"]
    out = loaded.model(torch.randn(1, 2, 16, 16, 16), torch.tensor([[True, False]]))
    assert out.shape == (1, 16)


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    def config(name: str) -> Any:
        c = tiny_config("taco", trainer={"max_steps": 3, "checkpoint_every": 100})
        c.out = str(tmp_path / name)
        return c

    full = pretrain(config("full"), logger=False, export=False)
    first = pretrain(config("resumed"), extra_callbacks=[StopAtStep(2)], logger=False, export=False)
    assert [s for s, _ in first.losses] == [1, 2]
    second = pretrain(config("resumed"), resume=True, logger=False, export=False)
    assert [s for s, _ in second.losses] == [3]
    resumed = first.losses + second.losses
    assert [s for s, _ in full.losses] == [s for s, _ in resumed]
    for (_, a), (_, b) in zip(full.losses, resumed):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
    for (name, a), b in zip(full.module.state_dict().items(), second.module.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    config = tiny_config("simclr")
    config.out = str(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="run without --resume"):
        pretrain(config, resume=True)


def test_nonfinite_loss_skips_the_step(tmp_path: Path) -> None:
    config = tiny_config(NaNSimCLR.name, trainer={"max_steps": 1})
    config.out = str(tmp_path / "nan")
    result = pretrain(config, logger=False, export=False)
    assert result.nonfinite_skipped == 2
    assert [s for s, _ in result.losses] == [1]
    assert all(math.isfinite(loss) for _, loss in result.losses)


def test_nonfinite_losses_in_a_row_stop_the_run(tmp_path: Path) -> None:
    config = tiny_config(AlwaysNaNSimCLR.name, trainer={"max_steps": 5, "max_nonfinite": 2})
    config.out = str(tmp_path / "nan")
    with pytest.raises(NonFiniteLossError, match="2 steps in a row"):
        pretrain(config, logger=False, export=False)


def test_unknown_method_and_backbone() -> None:
    config = tiny_config("simclr")
    config.method = "simclrr"
    with pytest.raises(ConfigError, match="simclr"):
        build(config)
    config = tiny_config("simclr")
    config.model.backbone = "swim"
    with pytest.raises(ConfigError, match="swin"):
        build(config)


def test_pair_method_on_single_modality_data() -> None:
    config = tiny_config("taco", data={"modalities": ["t1"]})
    with pytest.raises(ConfigError, match="two co-registered modalities"):
        build(config)


def test_data_path_without_subjects(tmp_path: Path) -> None:
    config = tiny_config("simclr", data={"path": str(tmp_path)})
    with pytest.raises(EmptyDatasetError, match="empty folder"):
        build(config)
    config = tiny_config("simclr", data={"path": str(tmp_path / "missing")})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build(config)


def _ddp_rank(rank: int, world: int, port: int, out: str) -> None:
    """One rank of a 2-process CPU DDP run, launched like torchrun (env vars), so Lightning's
    DDP strategy joins an externally created process group over gloo."""
    import json
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        NODE_RANK="0",
    )
    torch.set_num_threads(1)
    config = tiny_config(
        "taco", trainer={"max_steps": 2, "accelerator": "cpu", "devices": world, "strategy": "ddp"}
    )
    config.out = out
    result = pretrain(config, logger=False)
    topo = result.module.topo.last_stats if result.module is not None else {}
    Path(out, f"rank{rank}.json").write_text(
        json.dumps({"losses": result.losses, "n_pairs": float(topo.get("n_pairs", -1))})
    )


def test_ddp_two_gloo_processes(tmp_path: Path) -> None:
    import json
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = str(tmp_path / "ddp")
    # fork: the children reuse the imported modules (spawn would re-import torch and
    # Lightning in each, tens of seconds on a loaded 2-core machine).
    mp.start_processes(_ddp_rank, args=(2, port, out), nprocs=2, join=True, start_method="fork")
    ranks = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(2)]
    # Both ranks took the same optimizer steps; their losses differ (disjoint subjects).
    assert [s for s, _ in ranks[0]["losses"]] == [s for s, _ in ranks[1]["losses"]] == [1, 2]
    assert Path(out, "checkpoints", "last.ckpt").is_file()
    assert Path(out, "encoder", "encoder.pt").is_file()


def test_device_augmentation_path(tmp_path: Path) -> None:
    config = tiny_config("simclr+topo", trainer={"max_steps": 1, "device_augment": True})
    config.out = str(tmp_path / "device")
    result = pretrain(config, logger=False, export=False)
    assert len(result.losses) == 1 and math.isfinite(result.losses[0][1])
