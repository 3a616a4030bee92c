"""Fine-tune a pretrained lightly-topo Swin encoder inside MONAI's SwinUNETR.

``lightly_topo.checkpoint.load_into_monai_swinunetr`` copies the pretrained encoder into the
``swinViT`` of a ``monai.networks.nets.SwinUNETR``; the decoder keeps MONAI's initialisation
and the whole network is fine-tuned with a MONAI loss, as in any MONAI segmentation recipe.
The encoder was pretrained on one modality at a time (shared encoder); with
``expand_in_channels=True`` its patch embedding is spread over the 4 input channels.

Without ``--checkpoint`` the script first runs a short TACO pretraining of a small Swin
encoder on the synthetic brains (``OUT/encoder/encoder.pt``; with ``--tiny`` it only saves
a freshly initialised encoder in the same format, to stay within seconds), then fine-tunes
on the synthetic lesion labels (0 background, 1 necrotic core, 2 oedema, 3 enhancing, 4 WMH).

    python docs/examples/finetune_monai_swinunetr.py --checkpoint runs/taco/encoder/encoder.pt
    python docs/examples/finetune_monai_swinunetr.py --tiny   # seconds (also LIGHTLY_TOPO_EXAMPLE_TINY=1)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.networks.nets import SwinUNETR
from torch import Tensor

from lightly_topo.checkpoint import load_into_monai_swinunetr, read_metadata, save_pretrained
from lightly_topo.data import SyntheticBrains, collate_subjects
from lightly_topo.eval import mean_dice
from lightly_topo.methods import build_config
from lightly_topo.methods.train import pretrain
from lightly_topo.models import SwinBackbone

MODALITIES = ("t1", "t2", "pd", "flair")
NUM_CLASSES = 5
SMALL_SWIN = {"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1]}


def pretrain_small_swin(out: Path, steps: int) -> Path:
    """A short TACO run of a small Swin encoder on synthetic brains; returns encoder.pt."""
    config = build_config(
        {
            "method": "taco",
            "out": str(out),
            "data": {"synthetic_subjects": 4, "synthetic_size": 32, "crop_size": 32},
            "model": {
                "backbone": "swin",
                "backbone_kwargs": SMALL_SWIN,
            },
            "loss": {"mask_patch": 8},
            "topo": {"level": 2},  # stride 8: 4^3 tokens at 32^3 crops
            "trainer": {
                "max_steps": steps,
                "accelerator": "cpu",
                "checkpoint_every": steps,
                "progress": False,
            },
        }
    )
    result = pretrain(config, logger=False)
    assert result.encoder_path is not None
    return result.encoder_path


def untrained_small_swin(out: Path) -> Path:
    """A freshly initialised small Swin encoder saved in the pretrained-encoder format."""
    return save_pretrained(
        SwinBackbone(**SMALL_SWIN),
        out / "encoder.pt",
        method="none",
        modalities=MODALITIES,
        patch_size=32,
        spacing=220.0 / 32,
        normalization="zscore",
        training_steps=0,
    )


def random_crop(
    image: Tensor, label: Tensor, roi: Sequence[int], generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The same random ``roi`` crop of a batch of images ``(B, M, D, H, W)`` and labels."""
    starts = [
        int(torch.randint(0, n - r + 1, (1,), generator=generator))
        for n, r in zip(image.shape[2:], roi)
    ]
    box = (..., *(slice(s, s + r) for s, r in zip(starts, roi)))
    return image[box], label[box]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="encoder.pt of a swin pretraining")
    parser.add_argument("--tiny", action="store_true", help="shrink to seconds on CPU")
    args = parser.parse_args()
    tiny = args.tiny or os.environ.get("LIGHTLY_TOPO_EXAMPLE_TINY") == "1"
    # training crops (D, H, W): multiples of 32; at least one axis 64 so that the
    # SwinUNETR bottleneck (1/32) has more than one voxel for its instance norm
    steps, subjects, size, roi = (1, 2, 64, (64, 32, 32)) if tiny else (200, 24, 96, (64, 64, 64))
    batch_size, overlap = (1, 0.0) if tiny else (2, 0.25)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)

    checkpoint = args.checkpoint
    if checkpoint is None:
        out = Path(tempfile.mkdtemp(prefix="swin_taco_"))
        checkpoint = untrained_small_swin(out) if tiny else pretrain_small_swin(out, 100)
    meta = read_metadata(checkpoint)
    backbone = meta["backbone"]["config"]
    print(f"{checkpoint}: {meta['method']} / {meta['backbone']['name']} {backbone}")

    net = SwinUNETR(
        in_channels=len(MODALITIES),
        out_channels=NUM_CLASSES,
        feature_size=backbone["feature_size"],
        depths=backbone["depths"],
        num_heads=backbone["num_heads"],
        patch_size=backbone.get("patch_size", 2),
        use_v2=backbone.get("use_v2", False),
    )
    loaded = load_into_monai_swinunetr(checkpoint, net, expand_in_channels=True)
    print(f"loaded the encoder; remapped {len(loaded.remapped_keys)} keys, decoder left as is")

    data = SyntheticBrains(subjects, size=size, modalities=MODALITIES, seed=1)
    n_test = 1 if tiny else 4
    train = [data[i] for i in range(subjects - n_test)]
    test = collate_subjects([data[i] for i in range(subjects - n_test, subjects)])
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=1e-5)
    for step in range(steps):
        batch = collate_subjects(
            [train[(batch_size * step + j) % len(train)] for j in range(batch_size)]
        )
        image, label = random_crop(batch["image"], batch["label_map"], roi, generator)
        loss = loss_fn(net(image), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step:4d}  DiceCE {loss.item():.4f}")

    net.eval()
    with torch.no_grad():
        logits = sliding_window_inference(
            test["image"], roi, sw_batch_size=2, predictor=net, overlap=overlap
        )
        pred = torch.as_tensor(logits).argmax(1)
    dice = mean_dice(pred, test["label_map"][:, 0], NUM_CLASSES)
    print(f"mean Dice on {len(test['subject_id'])} held-out subjects: {dice:.3f}")
    print("done")


if __name__ == "__main__":
    main()
