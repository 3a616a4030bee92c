"""MAE plus the TACO topology terms, in plain PyTorch, on a 3D ViT.

Lightly's MAE example on 3D multi-modal MRI: a ViT encodes the kept patches, a decoder
predicts the masked ones. Two modalities of each subject are encoded with the *same* token
mask, so their kept tokens are the same places in the head, and ``TopoAlignLoss`` runs on them:

    loss = mse(predicted masked patches, patches) + topo(kept tokens of T1, of FLAIR)

    python docs/examples/mae_topo_pytorch.py            # a few minutes on a laptop CPU
    python docs/examples/mae_topo_pytorch.py --tiny     # seconds (also LIGHTLY_TOPO_EXAMPLE_TINY=1)
"""

from __future__ import annotations

import argparse
import os

import torch
from lightly.models import utils
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lightly_topo.data import SyntheticBrains
from lightly_topo.loss import TopoAlignLoss
from lightly_topo.models import MAEDecoder3D, ViT3D, patchify3d
from lightly_topo.transforms import MAETransform3D, collate_views


class MAE3DTopo(nn.Module):
    def __init__(self, crop: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.vit = ViT3D(img_size=crop, patch_size=patch, embed_dim=48, depth=2, num_heads=3)
        grid = (crop // patch,) * 3
        self.decoder = MAEDecoder3D(
            grid, patch, embed_dim=48, decoder_embed_dim=24, decoder_depth=1, decoder_num_heads=2
        )

    def forward(
        self, volume: Tensor, idx_keep: Tensor, idx_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Kept patch tokens ``(B, n_keep, C)``, predictions and targets of the masked patches."""
        encoded = self.vit.encode(volume, idx_keep=idx_keep)  # class token first
        prediction = self.decoder(encoded, idx_keep, idx_mask)
        target = utils.get_at_index(patchify3d(volume, self.patch), idx_mask - 1)
        return encoded[:, 1:], prediction, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="shrink to seconds on CPU")
    args = parser.parse_args()
    tiny = args.tiny or os.environ.get("LIGHTLY_TOPO_EXAMPLE_TINY") == "1"
    subjects, size, crop, batch_size, steps = (4, 32, 32, 4, 2) if tiny else (32, 64, 64, 8, 300)
    torch.manual_seed(0)

    dataset = SyntheticBrains(subjects, size=size, modalities=("t1", "flair"), seed=0)
    dataset.transform = MAETransform3D(input_size=crop, seed=0)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate_views
    )
    model = MAE3DTopo(crop, patch=8)
    topo = TopoAlignLoss(seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-4, weight_decay=0.05)

    step = 0
    while step < steps:
        for (view,) in loader:
            image = view["image"]  # (B, 2, D, H, W): t1 and flair, one crop
            b = image.shape[0]
            idx_keep, idx_mask = utils.random_token_mask((b, model.vit.sequence_length), 0.75)
            tokens_t1, pred_t1, target_t1 = model(image[:, :1], idx_keep, idx_mask)
            tokens_fl, pred_fl, target_fl = model(image[:, 1:], idx_keep, idx_mask)
            recon = nn.functional.mse_loss(pred_t1, target_t1) + nn.functional.mse_loss(
                pred_fl, target_fl
            )
            loss = recon + topo(tokens_t1, tokens_fl, subject_ids=view["subject_id"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            print(
                f"step {step:4d}  loss {loss.item():.4f}  reconstruction {recon.item():.4f}  "
                f"intra {topo.last_stats['intra'].item():.4f}  "
                f"inter {topo.last_stats['inter'].item():.4f}"
            )
            step += 1
            if step == steps:
                break
    print("done")


if __name__ == "__main__":
    main()
