"""BYOL plus the TACO topology terms, as a PyTorch Lightning module.

Lightly's BYOL example (online network with a predictor, momentum target, negative cosine
similarity) on 3D multi-modal MRI, with ``TopoAlignLoss`` added on the online network's
per-modality dense features of the first view:

    loss = byol(view 0, view 1) + topo(dense features of every modality of view 0)

``gather_distributed=True`` lets the inter-instance term pair subjects across GPUs under DDP
(it changes nothing on one process). Runs on the embedded synthetic brains.

    python docs/examples/byol_topo_lightning.py            # a few minutes on a laptop CPU
    python docs/examples/byol_topo_lightning.py --tiny     # seconds (also LIGHTLY_TOPO_EXAMPLE_TINY=1)
"""

from __future__ import annotations

import argparse
import copy
import os
from typing import Any

import pytorch_lightning as pl
import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import Tensor
from torch.utils.data import DataLoader

from lightly_topo.data import SyntheticBrains
from lightly_topo.loss import TopoAlignLoss
from lightly_topo.models import MultiModalEncoder, build_backbone
from lightly_topo.transforms import BYOLTransform3D, collate_views, foreground_tokens


class BYOLTopo(pl.LightningModule):
    def __init__(self, num_modalities: int, max_steps: int) -> None:
        super().__init__()
        backbone = build_backbone("resenc", features=(8, 16, 32), blocks_per_stage=1)
        self.encoder = MultiModalEncoder(backbone, mode="shared", num_modalities=num_modalities)
        self.projection_head = BYOLProjectionHead(backbone.embed_dim, 64, 32)
        self.prediction_head = BYOLPredictionHead(32, 64, 32)
        self.encoder_momentum = copy.deepcopy(self.encoder)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.encoder_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()
        self.topo = TopoAlignLoss(gather_distributed=True, seed=0)
        self.max_steps = max_steps

    def online(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        # one pass: the fused, mask-aware pooled embedding and the last level's dense maps
        out = self.encoder.encode(image, mask, levels=[-1])
        z = self.projection_head(out.pooled)
        return self.prediction_head(z), out.dense[0]

    @torch.no_grad()
    def target(self, image: Tensor, mask: Tensor) -> Tensor:
        return self.projection_head_momentum(self.encoder_momentum.encode(image, mask).pooled)

    def training_step(self, batch: list[dict[str, Any]], batch_idx: int) -> Tensor:
        momentum = cosine_schedule(self.global_step, self.max_steps, 0.996, 1.0)
        update_momentum(self.encoder, self.encoder_momentum, m=momentum)
        update_momentum(self.projection_head, self.projection_head_momentum, m=momentum)
        view0, view1 = batch
        p0, dense0 = self.online(view0["image"], view0["mask"])
        p1, _ = self.online(view1["image"], view1["mask"])
        z0 = self.target(view0["image"], view0["mask"])
        z1 = self.target(view1["image"], view1["mask"])
        byol = 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))
        brain = foreground_tokens(view0["foreground"], self.encoder.stride(-1))
        topo = self.topo(
            dense0, subject_ids=view0["subject_id"], modality_mask=view0["mask"], mask=brain
        )
        batch_size = len(view0["subject_id"])
        self.log_dict(
            {"byol": byol, "intra": self.topo.last_stats["intra"]},
            prog_bar=True,
            batch_size=batch_size,
        )
        self.log("inter", self.topo.last_stats["inter"], prog_bar=True, batch_size=batch_size)
        return byol + topo

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=3e-4, weight_decay=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="shrink to seconds on CPU")
    args = parser.parse_args()
    tiny = args.tiny or os.environ.get("LIGHTLY_TOPO_EXAMPLE_TINY") == "1"
    subjects, size, crop, batch_size, steps = (4, 32, 16, 4, 2) if tiny else (32, 64, 48, 8, 200)
    pl.seed_everything(0, verbose=False)

    dataset = SyntheticBrains(subjects, size=size, modalities=("t1", "t2", "flair"), seed=0)
    dataset.transform = BYOLTransform3D(input_size=crop, seed=0)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate_views
    )
    model = BYOLTopo(num_modalities=len(dataset.modality_names), max_steps=steps)
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu" if tiny else "auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=not tiny,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(model, loader)
    print({key: round(float(value), 4) for key, value in trainer.callback_metrics.items()})
    print("done")


if __name__ == "__main__":
    main()
