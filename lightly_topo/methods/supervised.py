"""The benchmark's positive control: the encoder trained with dense labels (supervised).

A benchmark must show that it can see a difference known to exist. The supervised control
is the same backbone with the same initialisation as every method, trained on the
*pretraining* subjects only (never a downstream subject) to predict their voxel labels
(anatomy and lesions) through a linear head on the fused multi-scale features, for the same
number of encoded volumes as the self-supervised methods. It is exported and loaded like
any pretrained encoder. A readout that cannot tell it from the random initialisation
cannot rank methods.

Plain PyTorch rather than a Lightning method: it needs labels, which no view pipeline of
the self-supervised methods carries, and nothing of theirs (views, heads, losses).

>>> from lightly_topo.models import MultiModalEncoder, build_backbone
>>> backbone = build_backbone("resenc", features=(4, 8), strides=(2, 2), blocks_per_stage=1)
>>> encoder = MultiModalEncoder(backbone, num_modalities=2)
>>> images, labels = torch.randn(3, 2, 16, 16, 16), torch.randint(0, 3, (3, 16, 16, 16))
>>> losses = train_supervised(encoder, images, labels, num_classes=3, steps=2, batch_size=2, crop_size=8)
>>> len(losses)
2
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightly_topo.models.modality import MultiModalEncoder


class LinearDenseHead(nn.Module):
    """1x1x1 convolution on every level upsampled to the finest level, then to the input.

    Args:
        channels: Channels of each level.
        num_classes: Output classes.
    """

    def __init__(self, channels: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(sum(channels), num_classes, kernel_size=1)

    def forward(self, levels: list[Tensor], size: tuple[int, ...]) -> Tensor:
        finest = levels[0].shape[2:]
        stacked = torch.cat(
            [
                level
                if level.shape[2:] == finest
                else F.interpolate(level, size=finest, mode="trilinear", align_corners=False)
                for level in levels
            ],
            dim=1,
        )
        logits = self.conv(stacked)
        return F.interpolate(logits, size=size, mode="trilinear", align_corners=False)


def train_supervised(
    encoder: MultiModalEncoder,
    images: Tensor | Sequence[Tensor],
    labels: Tensor | Sequence[Tensor],
    *,
    masks: Tensor | None = None,
    num_classes: int,
    steps: int,
    batch_size: int,
    crop_size: int,
    lr: float = 3e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
) -> list[float]:
    """Train ``encoder`` in place on voxel labels; returns the loss of every step.

    Each step draws ``batch_size`` subjects and one random crop of ``crop_size`` each
    (seeded by ``seed``; no flips, which would swap left and right structures), encodes
    every modality (``batch_size * M`` volumes), and minimises the cross-entropy of a
    linear head on the fused features with a class-balanced cross-entropy (each class
    weighted by its inverse voxel frequency in ``labels``, so a pallidum of a few voxels
    weighs as much as the background; measured on the benchmark's brains, plain
    cross-entropy never predicted a deep grey nucleus within its budget, and MONAI's
    ``DiceCELoss`` did no better). AdamW with a cosine decay to zero, as the
    self-supervised methods.

    Args:
        encoder: A shared-mode :class:`~lightly_topo.models.MultiModalEncoder`.
        images: float32 ``(N, M, D, H, W)`` training subjects, or one ``(M, D, H, W)`` per
            subject where their shapes differ.
        labels: int64 ``(N, D, H, W)`` voxel classes in ``[0, num_classes)`` (or one
            ``(D, H, W)`` per subject).
        masks: bool ``(N, M)`` availability (``None``: every modality present); a missing
            modality is left out of the fused features.
        num_classes: Number of classes.
        steps: Optimiser steps.
        batch_size: Subjects per step.
        crop_size: Edge of the training crops (at most the volume's smallest edge).
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        seed: Seeds the draws of subjects and crops and the head's initialisation.

    Raises:
        ValueError: Shapes that do not match, or a crop larger than the volumes.
    """
    if len(images) != len(labels) or any(
        image.ndim != 4 or label.shape != image.shape[1:] for image, label in zip(images, labels)
    ):
        raise ValueError(
            "supervised control: images (N, M, D, H, W) and labels (N, D, H, W) expected, "
            f"got {_shapes(images)} and {_shapes(labels)}"
        )
    shapes = [tuple(int(s) for s in image.shape[1:]) for image in images]
    if crop_size > min(min(s) for s in shapes):
        raise ValueError(
            f"supervised control: crop_size {crop_size} exceeds a volume of the shapes "
            f"{sorted(set(shapes))}"
        )
    num_modalities = int(images[0].shape[0])
    available = (
        torch.ones(len(images), num_modalities, dtype=torch.bool) if masks is None else masks
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = LinearDenseHead(tuple(encoder.feature_channels), num_classes)
    device = next(encoder.parameters()).device
    head.to(device)
    encoder.train()
    params = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    frequency = sum(
        (torch.bincount(label.flatten(), minlength=num_classes).double() for label in labels),
        torch.zeros(num_classes, dtype=torch.float64),
    )
    frequency = frequency / frequency.sum()
    weight = torch.where(frequency > 0, 1.0 / frequency.clamp_min(1e-12), 0.0)
    weight = (weight / (weight * frequency).sum()).float().to(device)
    losses = []
    for _ in range(steps):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        corners = _corners([shapes[int(i)] for i in index], crop_size, generator)
        mask = available[index].to(device)
        crops, targets = [], []
        for b in range(batch_size):
            box = tuple(slice(int(c[b]), int(c[b]) + crop_size) for c in corners)
            crops.append(images[int(index[b])][(slice(None), *box)])
            targets.append(labels[int(index[b])][box])
        x = torch.stack(crops).to(device)
        y = torch.stack(targets).to(device)
        levels = encoder.forward_fused(x, mask)
        loss = F.cross_entropy(head(levels, tuple(y.shape[1:])), y, weight=weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    encoder.eval()
    return losses


def _corners(
    shapes: Sequence[tuple[int, ...]], crop_size: int, generator: torch.Generator
) -> list[Tensor]:
    """Per axis, a random crop corner of every subject ``(B,)``; one draw per axis where
    the subjects share a shape."""
    corners = []
    for axis in range(3):
        highs = [s[axis] - crop_size + 1 for s in shapes]
        if len(set(highs)) == 1:
            corners.append(torch.randint(highs[0], (len(shapes),), generator=generator))
        else:
            corners.append(torch.cat([torch.randint(h, (1,), generator=generator) for h in highs]))
    return corners


def _shapes(tensors: Tensor | Sequence[Tensor]) -> str:
    if isinstance(tensors, Tensor):
        return str(tuple(tensors.shape))
    return str(sorted({tuple(t.shape) for t in tensors}))
