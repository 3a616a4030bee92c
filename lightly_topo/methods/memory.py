"""Peak-memory preflight of a pretraining step, before anything large is allocated.

The estimate counts the bytes the backbone saves for its backward pass on one view
(autograd's saved tensors, measured with ``torch.autograd.graph.saved_tensors_hooks`` on
one single-modality volume at up to two probe sizes and extrapolated linearly in the voxel
count to the run's crop), multiplies them by the volumes one step encodes
(:meth:`~lightly_topo.methods.base.PretrainMethod.volumes_per_step`) and a slack for the
heads, losses and allocator (:data:`SLACK`), scaled by :data:`BF16_FACTOR` under bf16
autocast, and adds the parameters with their gradients and two AdamW moments. A run whose estimate exceeds the memory the device has free is
refused with the settings that change it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

#: Multiplies the saved activations: gradients in flight, heads, losses, views, allocator.
SLACK = 1.5

#: Largest probe crop (voxels per edge); larger crops are extrapolated.
MAX_PROBE = 64


def saved_bytes(backbone: Any, crop: int) -> int:
    """Bytes the backbone saves for backward on one ``(1, 1, crop, crop, crop)`` volume."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    backbone.train()
    volume = torch.zeros(1, 1, crop, crop, crop)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        backbone.forward_features(volume)
    return total


def per_volume_bytes(backbone: Any, crop: int) -> float:
    """Saved bytes of one volume at ``crop``: measured where ``crop <= MAX_PROBE``, else
    extrapolated linearly in voxels from the two largest probe sizes that divide evenly."""
    if crop <= MAX_PROBE:
        return float(saved_bytes(backbone, crop))
    small, large = MAX_PROBE // 2, MAX_PROBE
    a, b = saved_bytes(backbone, small), saved_bytes(backbone, large)
    slope = (b - a) / (large**3 - small**3)
    return b + slope * (crop**3 - large**3)


#: Activation bytes under bf16 autocast relative to float32 (inputs of convolutions and
#: matrix products are saved in bf16, normalisations in float32).
BF16_FACTOR = 0.6


def estimate_step_bytes(
    config: Any, method_cls: Any, num_modalities: int, bf16: bool = False
) -> int:
    """Estimated peak bytes of one training step of ``config`` (see the module docstring);
    ``bf16``: the step runs under bf16 autocast."""
    from lightly_topo.models import build_backbone

    with torch.random.fork_rng(devices=[]):
        backbone = build_backbone(
            config.model.backbone, in_channels=1, **dict(config.model.backbone_kwargs)
        )
        per_volume = per_volume_bytes(backbone, config.data.crop_size)
    volumes = method_cls.volumes_per_step(config.data.batch_size, num_modalities)
    activations = per_volume * volumes * SLACK * (BF16_FACTOR if bf16 else 1.0)
    parameters = sum(p.numel() * p.element_size() for p in backbone.parameters())
    return int(activations + 4 * parameters)


def available_bytes(device: str) -> int | None:
    """Free memory of ``device`` (``"cuda"``: the current GPU; else the host's
    ``MemAvailable``); ``None`` where it cannot be read."""
    if device == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info()[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(
    config: Any, method_cls: Any, num_modalities: int, device: str, bf16: bool = False
) -> int:
    """The estimate; raises :class:`~lightly_topo.methods.config.ConfigError` where it exceeds
    the free memory of ``device``, naming the settings to lower (and how to skip the
    check)."""
    from lightly_topo.methods.config import ConfigError

    estimate = estimate_step_bytes(config, method_cls, num_modalities, bf16)
    free = available_bytes(device)
    if free is not None and estimate > free:
        gib = 2**30
        raise ConfigError(
            f"{config.method} on {device}: one training step needs about {estimate / gib:.1f} "
            f"GiB ({config.model.backbone} {dict(config.model.backbone_kwargs)}, "
            f"{config.data.crop_size}^3 crops, batch {config.data.batch_size}, "
            f"{num_modalities} modalities) but {free / gib:.1f} GiB are free; lower "
            "data.crop_size, data.batch_size or the backbone's size (e.g. --crop-size 32 "
            "--batch-size 2 --backbone resenc), or skip this check with "
            "trainer.memory_check=false"
        )
    return estimate


__all__ = ["available_bytes", "check_memory", "estimate_step_bytes", "per_volume_bytes"]
