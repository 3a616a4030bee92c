"""The methods' views made on the accelerator from raw batches (:class:`BatchAugment3D`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightly_topo.transforms import BatchAugment3D, TopoTransform3D
from lightly_topo.transforms.grid import sample


class DeviceViews:
    """Turn a raw batch ``{"raw": {"image": (B, M, D, H, W), "mask": (B, M)}, ...}`` into
    the views of a view kind, with the same augmentation recipe as the per-item transform.

    The per-subject parameters (a few scalars each) are drawn on the CPU from a generator
    seeded with the batch's item seeds, so runs stay reproducible; resampling and intensity
    transforms run batched on the batch's device.

    Args:
        transform: The per-item view transform whose recipe to apply
            (:class:`~lightly_topo.transforms.SimCLRTransform3D`, ``BYOLTransform3D``,
            ``MAETransform3D`` or :class:`~lightly_topo.transforms.TopoTransform3D`).
        kind: The method's view kind (``"simclr"``, ``"byol"``, ``"mae"``, ``"pair"``).
    """

    def __init__(self, transform: Any, kind: str) -> None:
        self.kind = kind
        if isinstance(transform, TopoTransform3D):
            pipelines = list(transform.pipelines[:1])
        else:
            pipelines = [view.pipeline for view in transform.transforms]
        # Typed loosely: each holds a view pipeline set after construction.
        self.augmenters: list[Any] = []
        for pipeline in pipelines:
            augmenter = BatchAugment3D()
            augmenter.pipeline = pipeline
            self.augmenters.append(augmenter)

    def __call__(self, batch: dict[str, Any], with_foreground: bool = False) -> dict[str, Any]:
        raw = batch.pop("raw")
        image: Tensor = raw["image"]
        mask: Tensor = raw["mask"]
        seed = int(batch["seeds"].sum().item()) & (2**63 - 1)
        generator = torch.Generator().manual_seed(seed)
        fg = None
        if with_foreground:
            avail = mask[:, :, None, None, None].to(image.dtype)
            fg = ((image * avail) != 0).any(dim=1, keepdim=True).float()
        if self.kind == "pair":
            picked, both = self._pick_pairs(image, mask, generator)
            augmenter = self.augmenters[0]
            params = augmenter.sample_params(picked.shape, both, generator)
            out = augmenter.apply_params(picked, params, both)
            batch["image_a"] = out["image"][:, 0:1]
            batch["image_b"] = out["image"][:, 1:2]
            batch["grid"] = out["grid"]
            if fg is not None:
                batch["foreground"] = sample(fg, out["grid"], mode="nearest") > 0.5
            return batch
        views = []
        for augmenter in self.augmenters:
            params = augmenter.sample_params(image.shape, mask, generator)
            out = augmenter.apply_params(image, params, mask)
            view = {"image": out["image"], "mask": out["mask"], "grid": out["grid"]}
            if fg is not None:
                view["foreground"] = sample(fg, out["grid"], mode="nearest") > 0.5
            views.append(view)
        batch["views"] = views
        return batch

    @staticmethod
    def _pick_pairs(
        image: Tensor, mask: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Two random available modalities of every subject: ``(B, 2, D, H, W)``."""
        scores = torch.rand(mask.shape, generator=generator).to(mask.device)
        scores = scores.masked_fill(~mask, -1.0)
        order = scores.argsort(dim=1, descending=True)[:, :2]
        # A subject with one modality repeats it (as TopoTransform3D's "repeat").
        single = mask.sum(dim=1) < 2
        order[single, 1] = order[single, 0]
        rows = torch.arange(image.shape[0], device=image.device)[:, None]
        picked = image[rows, order]
        both = torch.ones(image.shape[0], 2, dtype=torch.bool, device=image.device)
        return picked, both
