"""Every method on every backbone it supports: one step runs, a short fit lowers the loss."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_setup import TINY, fake_batch, tiny_config

from lightly_topo.methods import (
    BYOL3D,
    MAE3D,
    TACO,
    BYOLTopo3D,
    ConfigError,
    CrossModalSimCLR3D,
    MAETopo3D,
    SimCLR3D,
    SimCLRTopo3D,
)
from lightly_topo.methods.base import PretrainMethod

METHODS: list[type[PretrainMethod]] = [
    SimCLR3D,
    BYOL3D,
    MAE3D,
    TACO,
    SimCLRTopo3D,
    BYOLTopo3D,
    MAETopo3D,
    CrossModalSimCLR3D,
]


def _step(
    module: PretrainMethod, batch: dict, optimizer: torch.optim.Optimizer, seed: int
) -> float:
    torch.manual_seed(seed)
    loss, parts = module.compute_loss(batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    module.after_optimizer_step()
    assert all(torch.isfinite(v).all() for v in parts.values())
    return float(loss.detach())


@pytest.mark.parametrize("backbone", ["resenc", "vit", "swin"])
@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_method_runs_on_backbone(method: type[PretrainMethod], backbone: str) -> None:
    assert backbone in method.backbones
    crop = TINY[backbone][1]
    # Swin needs 32^3 inputs: one modality where the method allows it, to stay fast.
    modalities = 1 if backbone == "swin" and not method.needs_pairs else 2
    names = ("t1", "t2")[:modalities]
    module = method(tiny_config(method.name, backbone), names)
    batch = fake_batch(crop, modalities=modalities)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    before = {n: p.detach().clone() for n, p in module.encoder.named_parameters()}
    loss = _step(module, batch, optimizer, seed=0)
    assert math.isfinite(loss)
    changed = [n for n, p in module.encoder.named_parameters() if not torch.equal(p, before[n])]
    assert changed, "the encoder did not learn anything in one step"
    assert module.step_outputs["pooled"].shape[0] == 2
    assert module.step_outputs["embedding"].ndim == 2


@pytest.mark.parametrize(
    "method,backbone",
    [(m, "resenc") for m in METHODS] + [(MAE3D, "vit"), (MAETopo3D, "vit")],
    ids=lambda x: x if isinstance(x, str) else x.name,
)
def test_short_fit_lowers_loss(method: type[PretrainMethod], backbone: str) -> None:
    torch.manual_seed(0)
    config = tiny_config(method.name, backbone, trainer={"max_steps": 40})
    module = method(config, ("t1", "t2"))
    batch = fake_batch(TINY[backbone][1], batch=2)
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    losses = [_step(module, batch, optimizer, seed=0) for _ in range(5)]
    assert min(losses[-2:]) < losses[0], losses


def test_mae_uses_token_dropping_on_vit_and_masked_input_elsewhere() -> None:
    vit = MAE3D(tiny_config("mae", "vit"), ("t1", "t2"))
    cnn = MAE3D(tiny_config("mae", "resenc"), ("t1", "t2"))
    assert vit.token_dropping and not cnn.token_dropping
    view = fake_batch(16)["views"][0]
    loss, features, _, keep = vit.reconstruct(view["image"], view["mask"])
    # 4^3 = 64 patches, 25% kept; 2 subjects x 2 modalities encoded separately (shared).
    assert keep is not None and keep.shape == (4, 16)
    assert features.shape == (4, 16, 24)
    assert torch.isfinite(loss)


def test_mae_runs_under_bf16_autocast() -> None:
    for backbone in ("vit", "resenc"):
        module = MAE3D(tiny_config("mae", backbone), ("t1", "t2"))
        view = fake_batch(16)["views"][0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, *_ = module.reconstruct(view["image"], view["mask"])
        loss.backward()
        assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_stacked_modalities() -> None:
    config = tiny_config("simclr", model={"modality_handling": "stacked"})
    module = SimCLR3D(config, ("t1", "t2"))
    assert module.encoder.in_channels == 2
    batch = fake_batch(16)
    batch["views"][0]["mask"][0, 1] = False
    loss, _ = module.compute_loss(batch)
    assert torch.isfinite(loss)
    mae = MAE3D(tiny_config("mae", "vit", model={"modality_handling": "stacked"}), ("t1", "t2"))
    loss, *_ = mae.reconstruct(batch["views"][0]["image"], batch["views"][0]["mask"])
    assert torch.isfinite(loss)


def test_taco_defaults_are_the_paper_recipe() -> None:
    from lightly_topo.methods.config import build_config

    config = build_config({"method": "taco"})
    assert config.model.backbone == "swin"
    assert config.model.backbone_kwargs == {"feature_size": 48}
    assert config.data.crop_size == 96 and config.data.batch_size == 6
    assert (config.optim.lr, config.optim.weight_decay) == (3e-4, 0.1)
    topo = config.topo
    assert (topo.intra_weight, topo.inter_weight, topo.k) == (10.0, 10.0, 5)
    assert (topo.intra_margin, topo.inter_margin) == (0.05, 0.4)
    assert config.loss.recon_weight == 1.0


def test_topo_level_too_coarse_for_crop_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"topo\.level"):
        TACO(tiny_config("taco", topo={"level": 2, "k": 7}, data={"crop_size": 8}), ("t1", "t2"))
    with pytest.raises(ConfigError, match="modality_handling"):
        MAETopo3D(tiny_config("mae+topo", model={"modality_handling": "stacked"}), ("t1", "t2"))


def test_combination_adds_topology_terms() -> None:
    torch.manual_seed(0)
    batch = fake_batch(16)
    plain = SimCLR3D(tiny_config("simclr"), ("t1", "t2"))
    torch.manual_seed(0)
    combo = SimCLRTopo3D(tiny_config("simclr+topo"), ("t1", "t2"))
    combo.load_state_dict(plain.state_dict(), strict=False)
    torch.manual_seed(1)
    loss_plain, parts_plain = plain.compute_loss(batch)
    torch.manual_seed(1)
    loss_combo, parts = combo.compute_loss(batch)
    assert "topo" in parts and "intra" in parts and "inter" in parts
    assert torch.allclose(parts["ntxent"], parts_plain["ntxent"])
    assert torch.allclose(loss_combo, loss_plain + parts["topo"], atol=1e-5)
    # Identical grids: every foreground token is matched.
    assert 0.0 < float(combo.step_outputs["valid_fraction"]) <= 1.0
