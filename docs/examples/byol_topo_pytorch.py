# Lightly's examples/pytorch/byol.py in 3D multimodal MRI, with the TACO topology loss added.
# Lines that differ from Lightly's script end in "# topo". Everything else is Lightly's recipe:
# online network with predictor, momentum target, negative cosine similarity, SGD.
#
#     python docs/examples/byol_topo_pytorch.py            # minutes on a laptop CPU
#     python docs/examples/byol_topo_pytorch.py --tiny     # seconds (or LIGHTLY_TOPO_EXAMPLE_TINY=1)

import copy
import os  # topo
import sys  # topo

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import nn

from lightly_topo.data import SyntheticBrains  # topo
from lightly_topo.loss import TopoAlignLoss  # topo
from lightly_topo.models import MultiModalEncoder, build_backbone  # topo
from lightly_topo.transforms import BYOLTransform3D, collate_views, foreground_tokens  # topo

TINY = "--tiny" in sys.argv or os.environ.get("LIGHTLY_TOPO_EXAMPLE_TINY") == "1"  # topo


class BYOL(nn.Module):
    def __init__(self, backbone):
        super().__init__()

        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(backbone.embed_dim, 1024, 256)  # topo
        self.prediction_head = BYOLPredictionHead(256, 1024, 256)

        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)

        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x, mask):  # topo
        out = self.backbone.encode(x, mask, levels=[-1])  # topo: pooled + per-modality maps
        z = self.projection_head(out.pooled)  # topo
        p = self.prediction_head(z)
        return p, out.dense[0]  # topo: (B, M, C, d, h, w) for the topology loss

    def forward_momentum(self, x, mask):  # topo
        y = self.backbone_momentum.encode(x, mask).pooled  # topo
        z = self.projection_head_momentum(y)
        z = z.detach()
        return z


torch.manual_seed(0)  # topo
# One single-channel 3D encoder shared by every modality (TACO's setting).  # topo
resenc = build_backbone("resenc", features=(8, 16, 32), blocks_per_stage=1)  # topo
backbone = MultiModalEncoder(resenc, mode="shared", num_modalities=3)  # topo
model = BYOL(backbone)

device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)

transform = BYOLTransform3D(input_size=16 if TINY else 32, seed=0)  # topo
dataset = SyntheticBrains(8 if TINY else 64, size=32, modalities=("t1", "t2", "flair"))  # topo
dataset.transform = transform  # topo
# or a folder of NIfTI files:  # topo
# dataset = MultiModalVolumeDataset(read_subjects("path/to/folder"), transform=transform)  # topo

dataloader = torch.utils.data.DataLoader(
    dataset,
    batch_size=4 if TINY else 8,  # topo
    collate_fn=collate_views,  # topo
    shuffle=True,
    drop_last=True,
    num_workers=0 if TINY else 2,  # topo
)

criterion = NegativeCosineSimilarity()
topo = TopoAlignLoss(seed=0)  # topo: the released recipe (10 intra + 10 inter, k = 5)
optimizer = torch.optim.SGD(model.parameters(), lr=0.06)

print("Starting Training")
for epoch in range(8 if TINY else 20):  # topo
    total_loss = 0
    for view0, view1 in dataloader:  # topo: one dict per view
        update_momentum(model.backbone, model.backbone_momentum, m=0.99)
        update_momentum(model.projection_head, model.projection_head_momentum, m=0.99)
        x0, m0 = view0["image"].to(device), view0["mask"].to(device)  # topo
        x1, m1 = view1["image"].to(device), view1["mask"].to(device)  # topo
        p0, dense0 = model(x0, m0)  # topo
        z0 = model.forward_momentum(x0, m0)  # topo
        p1, _ = model(x1, m1)  # topo
        z1 = model.forward_momentum(x1, m1)  # topo
        brain = foreground_tokens(view0["foreground"].to(device), backbone.stride(-1))  # topo
        ids = view0["subject_id"]  # topo
        loss_topo = topo(dense0, subject_ids=ids, modality_mask=m0, mask=brain)  # topo
        loss = 0.5 * (criterion(p0, z1) + criterion(p1, z0)) + loss_topo  # topo
        total_loss += loss.detach()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    avg_loss = total_loss / len(dataloader)
    print(f"epoch: {epoch:>02}, loss: {avg_loss:.5f}")
