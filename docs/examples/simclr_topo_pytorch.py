"""SimCLR plus the TACO topology terms, in plain PyTorch, with Lightly's NTXentLoss.

The recipe is Lightly's SimCLR example with two changes: the encoder sees each MRI modality
on its own (one shared single-channel 3D backbone), and ``TopoAlignLoss`` is added to the
NT-Xent loss on the per-modality dense features:

    loss = ntxent(z0, z1) + topo(dense features of every modality of view 0)

Within one view all modalities share one voxel grid, so token ``i`` of T1 and token ``i`` of
FLAIR are the same place in the head: the intra-instance term keeps each token's neighbourhood
across modalities, the inter-instance term aligns mutual-nearest-neighbour tokens of different
subjects. Runs on the embedded synthetic brains; no files needed.

    python docs/examples/simclr_topo_pytorch.py            # about 10 minutes on a laptop CPU
    python docs/examples/simclr_topo_pytorch.py --tiny     # seconds (also LIGHTLY_TOPO_EXAMPLE_TINY=1)
"""

from __future__ import annotations

import argparse
import os

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lightly_topo.data import SyntheticBrains
from lightly_topo.loss import TopoAlignLoss
from lightly_topo.models import MultiModalEncoder, build_backbone
from lightly_topo.transforms import SimCLRTransform3D, collate_views


class SimCLRTopo(nn.Module):
    """A shared per-modality 3D encoder with a SimCLR projection head."""

    def __init__(self, num_modalities: int) -> None:
        super().__init__()
        backbone = build_backbone("resenc", features=(8, 16, 32), blocks_per_stage=1)
        self.encoder = MultiModalEncoder(backbone, mode="shared", num_modalities=num_modalities)
        self.head = SimCLRProjectionHead(self.encoder.embed_dim, 64, 32)

    def forward(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Projection ``(B, 32)`` and per-modality dense features ``(B, M, C, d, h, w)``."""
        # one pass: the fused, mask-aware pooled embedding and the last level's dense maps
        out = self.encoder.encode(image, mask, levels=[-1])
        return self.head(out.pooled), out.dense[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="shrink to seconds on CPU")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    tiny = args.tiny or os.environ.get("LIGHTLY_TOPO_EXAMPLE_TINY") == "1"
    subjects, size, crop, batch_size = (4, 32, 16, 4) if tiny else (32, 64, 48, 8)
    steps = args.steps or (2 if tiny else 300)
    torch.manual_seed(0)

    transform = SimCLRTransform3D(input_size=crop, seed=0)
    dataset = SyntheticBrains(subjects, size=size, modalities=("t1", "t2", "flair"), seed=0)
    dataset.transform = transform
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate_views
    )

    model = SimCLRTopo(num_modalities=len(dataset.modality_names))
    ntxent = NTXentLoss(temperature=0.1)
    # The released TACO recipe: 10 intra + 10 inter, k = 5, margins 0.05 / 0.4, <= 6 pairs.
    topo = TopoAlignLoss(intra_weight=10.0, inter_weight=10.0, k=5, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)

    step = 0
    while step < steps:
        for view0, view1 in loader:
            z0, dense0 = model(view0["image"], view0["mask"])
            z1, _ = model(view1["image"], view1["mask"])
            # dense0: (B, M, C, d, h, w); modality_mask says which modalities each view has
            loss_topo = topo(dense0, subject_ids=view0["subject_id"], modality_mask=view0["mask"])
            loss = ntxent(z0, z1) + loss_topo
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            stats = topo.last_stats
            print(
                f"step {step:4d}  loss {loss.item():.4f}  ntxent {(loss - loss_topo).item():.4f}  "
                f"intra {stats['intra'].item():.4f}  inter {stats['inter'].item():.4f}  "
                f"matched {stats['matched_fraction'].item():.2f}"
            )
            step += 1
            if step == steps:
                break
    print("done")


if __name__ == "__main__":
    main()
