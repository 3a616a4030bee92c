"""The supervised positive control and the methods' encoded-volume budget."""

from __future__ import annotations

import pytest
import torch

from lightly_topo.methods.supervised import train_supervised
from lightly_topo.models import MultiModalEncoder, build_backbone


def _encoder(seed: int = 0) -> MultiModalEncoder:
    torch.manual_seed(seed)
    backbone = build_backbone("resenc", features=(4, 8), strides=(2, 2), blocks_per_stage=1)
    return MultiModalEncoder(backbone, num_modalities=2)


def test_supervised_training_learns_a_position_coded_label() -> None:
    images = torch.randn(4, 2, 16, 16, 16)
    labels = torch.zeros(4, 16, 16, 16, dtype=torch.long)
    labels[:, :8] = 1  # "left" half: told apart by position only
    encoder = _encoder()
    losses = train_supervised(
        encoder, images, labels, num_classes=2, steps=40, batch_size=2, crop_size=16, lr=3e-3
    )
    assert len(losses) == 40 and losses[-1] < 0.5 * losses[0]
    assert not encoder.training


def test_supervised_training_is_seeded_and_checks_shapes() -> None:
    images, labels = torch.randn(3, 2, 16, 16, 16), torch.randint(0, 3, (3, 16, 16, 16))
    runs = []
    for _ in range(2):
        encoder = _encoder()
        runs.append(
            train_supervised(
                encoder, images, labels, num_classes=3, steps=3, batch_size=2, crop_size=8, seed=5
            )
        )
    assert runs[0] == runs[1]
    with pytest.raises(ValueError, match="crop_size 32 exceeds"):
        train_supervised(
            _encoder(), images, labels, num_classes=3, steps=1, batch_size=1, crop_size=32
        )
    with pytest.raises(ValueError, match="labels"):
        train_supervised(
            _encoder(), images, labels[:2], num_classes=3, steps=1, batch_size=1, crop_size=8
        )


def test_a_list_of_subjects_trains_as_the_stacked_tensor_and_shapes_may_differ() -> None:
    images, labels = torch.randn(3, 2, 16, 16, 16), torch.randint(0, 3, (3, 16, 16, 16))
    kwargs = {"num_classes": 3, "steps": 3, "batch_size": 2, "crop_size": 8, "seed": 5}
    stacked = train_supervised(_encoder(), images, labels, **kwargs)
    listed = train_supervised(_encoder(), list(images), list(labels), **kwargs)
    assert stacked == listed
    masks = torch.tensor([[True, True], [True, False], [True, True]])
    assert train_supervised(_encoder(), images, labels, masks=masks, **kwargs) != stacked
    varied = [torch.randn(2, 16, 16, 8 + 4 * i) for i in range(3)]
    targets = [torch.randint(0, 3, v.shape[1:]) for v in varied]
    losses = train_supervised(_encoder(), varied, targets, masks=masks, **kwargs)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    with pytest.raises(ValueError, match="crop_size 12 exceeds"):
        train_supervised(_encoder(), varied, targets, **{**kwargs, "crop_size": 12})


@pytest.mark.parametrize(
    "method", ["simclr", "byol", "mae", "xmodal-simclr", "taco", "simclr+topo"]
)
def test_volumes_per_step_is_what_a_step_encodes(method: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from lightly_topo.benchmark import get_preset
    from lightly_topo.benchmark.datasets import pretraining_brains, pretraining_table
    from lightly_topo.benchmark.pretraining import run_pretrain, volumes_per_step
    from lightly_topo.models.resenc import ResEncBackbone

    counted: list[int] = []
    original = ResEncBackbone.forward_features

    def counting(self, x):  # type: ignore[no-untyped-def]
        if torch.is_grad_enabled():
            counted.append(int(x.shape[0]))
        return original(self, x)

    monkeypatch.setattr(ResEncBackbone, "forward_features", counting)
    # the memory preflight encodes one probe volume of its own before training
    monkeypatch.setattr("lightly_topo.methods.memory.check_memory", lambda *a, **k: 0)
    preset = get_preset("smoke", pretrain_volumes=1)  # one step
    table = pretraining_table(pretraining_brains(preset))
    record = run_pretrain(preset, method, 0, tmp_path, table, "cpu")
    assert record["steps"] == 1
    assert sum(counted) == volumes_per_step(preset, method, len(table.modality_names))
