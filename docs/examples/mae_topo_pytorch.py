# Lightly's examples/pytorch/mae.py in 3D multimodal MRI, with the TACO topology loss added.
# Lines that differ from Lightly's script end in "# topo". Everything else is Lightly's recipe:
# mask 75% of the patch tokens, encode the kept ones, decode, regress the masked patches.
# Two modalities of each subject are encoded with the *same* token mask, so their kept tokens
# are the same places in the head, and the topology loss runs on them.
#
#     python docs/examples/mae_topo_pytorch.py            # minutes on a laptop CPU
#     python docs/examples/mae_topo_pytorch.py --tiny     # seconds (or LIGHTLY_TOPO_EXAMPLE_TINY=1)

import os  # topo
import sys  # topo

import torch
from lightly.models import utils
from torch import nn

from lightly_topo.data import SyntheticBrains  # topo
from lightly_topo.loss import TopoAlignLoss  # topo
from lightly_topo.models import MAEDecoder3D, ViT3D, patchify3d  # topo
from lightly_topo.transforms import MAETransform3D, collate_views, foreground_tokens  # topo

TINY = "--tiny" in sys.argv or os.environ.get("LIGHTLY_TOPO_EXAMPLE_TINY") == "1"  # topo


class MAE(nn.Module):
    def __init__(self, vit):
        super().__init__()

        self.mask_ratio = 0.75
        self.patch_size = vit.patch_size  # topo
        # ViT3D is Lightly's MaskedVisionTransformer in 3D: no TIMM wrapper needed.  # topo
        self.backbone = vit  # topo
        self.sequence_length = self.backbone.sequence_length
        self.decoder = MAEDecoder3D(  # topo: 3D positional embedding; embeds, fills, predicts
            grid_size=vit.grid_size,  # topo
            patch_size=self.patch_size,
            embed_dim=vit.embed_dim,
            decoder_embed_dim=48,  # topo
            decoder_depth=1,  # topo
            decoder_num_heads=4,  # topo
        )

    def forward_encoder(self, images, idx_keep=None):
        return self.backbone.encode(images=images, idx_keep=idx_keep)

    def forward_decoder(self, x_encoded, idx_keep, idx_mask):
        return self.decoder(x_encoded, idx_keep, idx_mask)  # topo

    def forward(self, images, idx_keep, idx_mask):  # topo: the mask is shared by modalities
        x_encoded = self.forward_encoder(images=images, idx_keep=idx_keep)
        x_pred = self.forward_decoder(x_encoded=x_encoded, idx_keep=idx_keep, idx_mask=idx_mask)

        # get image patches for masked tokens
        patches = patchify3d(images, self.patch_size)  # topo
        # must adjust idx_mask for missing class token
        target = utils.get_at_index(patches, idx_mask - 1)
        return x_pred, target, x_encoded[:, 1:]  # topo: kept patch tokens for topology


torch.manual_seed(0)  # topo
vit = ViT3D(img_size=32, patch_size=8, embed_dim=96, depth=4, num_heads=4)  # topo
model = MAE(vit)

device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)

transform = MAETransform3D(input_size=32, seed=0)  # topo
dataset = SyntheticBrains(8 if TINY else 64, size=32, modalities=("t1", "flair"))  # topo
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

criterion = nn.MSELoss()
topo = TopoAlignLoss(seed=0)  # topo: the released recipe (10 intra + 10 inter, k = 5)
# Lightly's 1.5e-4 is sized for long ImageNet schedules; see docs/recipes/lightly.md.  # topo
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)  # topo

print("Starting Training")
for epoch in range(12 if TINY else 20):  # topo
    total_loss = 0
    for (view,) in dataloader:  # topo: one view, every modality under one crop
        images = view["image"].to(device)  # topo: (B, 2, D, H, W), t1 and flair
        idx_keep, idx_mask = utils.random_token_mask(  # topo: one mask for both modalities
            size=(images.shape[0], model.sequence_length),  # topo
            mask_ratio=model.mask_ratio,  # topo
            device=images.device,  # topo
        )  # topo
        pred_t1, target_t1, tokens_t1 = model(images[:, 0:1], idx_keep, idx_mask)  # topo
        pred_fl, target_fl, tokens_fl = model(images[:, 1:2], idx_keep, idx_mask)  # topo
        brain = foreground_tokens(view["foreground"].to(device), model.patch_size)  # topo
        kept = utils.get_at_index(brain[..., None], idx_keep[:, 1:] - 1)[..., 0]  # topo
        loss = criterion(pred_t1, target_t1) + criterion(pred_fl, target_fl)  # topo
        loss = loss + topo(tokens_t1, tokens_fl, subject_ids=view["subject_id"], mask=kept)  # topo
        total_loss += loss.detach()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    avg_loss = total_loss / len(dataloader)
    print(f"epoch: {epoch:>02}, loss: {avg_loss:.5f}")
