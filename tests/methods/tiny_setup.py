"""Tiny configurations shared by the method tests (CPU, seconds per fit)."""

from __future__ import annotations

from typing import Any

import torch

from lightly_topo.methods.config import PretrainConfig, build_config

#: Backbone kwargs, crop size and topology level of the tiny test models.
TINY: dict[str, tuple[dict[str, Any], int, int]] = {
    "resenc": ({"features": [4, 8, 16], "blocks_per_stage": 1}, 16, 2),
    "swin": ({"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1]}, 32, 2),
    "vit": ({"patch_size": 4, "embed_dim": 24, "depth": 1, "num_heads": 2}, 16, 0),
}


def tiny_config(
    method: str, backbone: str = "resenc", **sections: dict[str, Any]
) -> PretrainConfig:
    """A tiny configuration of ``method`` on ``backbone``; ``sections`` override."""
    kwargs, crop, level = TINY[backbone]
    layer: dict[str, Any] = {
        "method": method,
        "model": {
            "backbone": backbone,
            "backbone_kwargs": kwargs,
            "hidden_dim": 32,
            "projection_dim": 16,
        },
        "data": {
            "synthetic_subjects": 4,
            "synthetic_size": crop,
            "crop_size": crop,
            "batch_size": 2,
            "modalities": ["t1", "t2"],
        },
        "loss": {"mask_patch": 4, "decoder_dim": 16, "decoder_depth": 1},
        "topo": {"level": level},
        "optim": {"lr": 1e-3, "warmup_steps": 0},
        "trainer": {"max_steps": 2, "checkpoint_every": 1, "log_every": 1, "progress": False},
    }
    for key, value in sections.items():
        layer[key] = {**layer.get(key, {}), **value}
    return build_config(layer)


def fake_batch(crop: int, batch: int = 2, modalities: int = 2, seed: int = 0) -> dict[str, Any]:
    """A batch in the format of every view kind (views, pairs), random content."""
    g = torch.Generator().manual_seed(seed)

    def view() -> dict[str, Any]:
        image = torch.randn(batch, modalities, crop, crop, crop, generator=g)
        grid = torch.stack(
            torch.meshgrid(*[torch.arange(crop, dtype=torch.float32)] * 3, indexing="ij")
        )
        return {
            "image": image,
            "mask": torch.ones(batch, modalities, dtype=torch.bool),
            "grid": grid.expand(batch, -1, -1, -1, -1).clone(),
        }

    return {
        "views": [view(), view()],
        "image_a": torch.randn(batch, 1, crop, crop, crop, generator=g),
        "image_b": torch.randn(batch, 1, crop, crop, crop, generator=g),
        "subject_id": [f"s{i}" for i in range(batch)],
        "probe_target": torch.zeros(batch, dtype=torch.long),
    }
