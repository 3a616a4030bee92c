"""Atomic checkpoint IO, the non-finite guard, collapse monitors and the linear probe."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lightly_topo.methods.callbacks import (
    AtomicCheckpointIO,
    CollapseMonitor,
    NonFiniteGuard,
    NonFiniteLossError,
    OnlineLinearProbe,
    atomic_torch_save,
)


def test_atomic_save_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "sub" / "last.ckpt"
    io.save_checkpoint({"step": 1}, target)
    io.save_checkpoint({"step": 2}, target)
    assert io.load_checkpoint(target, weights_only=False)["step"] == 2
    assert os.listdir(target.parent) == ["last.ckpt"]


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, target)

    class Unpicklable:
        def __reduce__(self) -> tuple:
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_torch_save({"bad": Unpicklable()}, target)
    assert torch.load(target)["step"] == 1
    assert os.listdir(tmp_path) == ["last.ckpt"]


class _Module:
    def __init__(self, **outputs: object) -> None:
        self.step_outputs = outputs
        self.logged: dict[str, float] = {}
        self.nonfinite_in_row = 0
        self.nonfinite_total = 0

    def log_dict(self, values: dict[str, float], **_: object) -> None:
        self.logged.update(values)


def test_nonfinite_guard_stops_after_streak() -> None:
    guard = NonFiniteGuard(max_in_row=3)
    module = _Module()
    trainer = SimpleNamespace(global_step=5)
    module.nonfinite_in_row = 2
    guard.on_train_batch_end(trainer, module, None, None, 0)  # type: ignore[arg-type]
    module.nonfinite_in_row = 3
    with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
        guard.on_train_batch_end(trainer, module, None, None, 0)  # type: ignore[arg-type]


def test_collapse_monitor_separates_collapse_from_spread() -> None:
    monitor = CollapseMonitor(every_n_steps=1)
    trainer = SimpleNamespace(global_step=1)
    spread = _Module(embedding=torch.randn(64, 16), valid_fraction=torch.tensor(0.5))
    collapsed = _Module(embedding=torch.ones(64, 16) + 1e-6 * torch.randn(64, 16))
    monitor.on_train_batch_end(trainer, spread, None, None, 0)  # type: ignore[arg-type]
    monitor.on_train_batch_end(trainer, collapsed, None, None, 0)  # type: ignore[arg-type]
    assert spread.logged["monitor/effective_rank"] > 10 > collapsed.logged["monitor/effective_rank"]
    assert spread.logged["monitor/embedding_std"] > 10 * collapsed.logged["monitor/embedding_std"]
    assert spread.logged["monitor/valid_token_fraction"] == 0.5


def test_online_probe_learns_separable_labels_and_resumes() -> None:
    torch.manual_seed(0)
    probe = OnlineLinearProbe(num_classes=2, lr=0.05)
    target = torch.tensor([0, 1] * 8)
    features = torch.randn(16, 8) + 3 * target[:, None].float()
    module = _Module(pooled=features, probe_target=target)
    for _ in range(30):
        probe.on_train_batch_end(None, module, None, None, 0)  # type: ignore[arg-type]
    assert module.logged["probe/accuracy"] == 1.0
    restored = OnlineLinearProbe(num_classes=2, lr=0.05)
    restored.load_state_dict(probe.state_dict())
    module_b = _Module(pooled=features, probe_target=target)
    restored.on_train_batch_end(None, module_b, None, None, 0)  # type: ignore[arg-type]
    assert module_b.logged["probe/accuracy"] == 1.0
    unlabelled = _Module(pooled=features, probe_target=torch.full((16,), -1))
    probe.on_train_batch_end(None, unlabelled, None, None, 0)  # type: ignore[arg-type]
    assert "probe/accuracy" not in unlabelled.logged
