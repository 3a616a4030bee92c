"""TACO pretraining on a folder of BraTS-style cases.

Point ``--data`` at a BraTS folder (``<case>/<case>_{t1,t1ce,t2,flair}.nii.gz``, 2018-2021
naming, or ``<case>/<case>-{t1n,t1c,t2w,t2f}.nii.gz``, 2023 naming). Without ``--data`` the
script writes a few synthetic subjects in that layout first
(:func:`lightly_topo.data.synthetic.write_brats_folder`), so it runs anywhere.

TACO = masked reconstruction + 10 * intra + 10 * inter on pairs of co-registered modalities
of distinct subjects. The defaults of ``method: taco`` are the released recipe (Swin-UNETR
feature size 48, 96^3 crops, 6 subject pairs per batch, AdamW 3e-4 / 0.1: a GPU job); this
script shrinks the backbone and crops so it runs on a CPU. The same run from the shell:

    lightly-topo pretrain --method taco --data /path/to/brats --config my_taco.yaml

    python docs/examples/taco_brats_folder.py --data /path/to/brats --out runs/taco_brats
    python docs/examples/taco_brats_folder.py --tiny     # seconds (also LIGHTLY_TOPO_EXAMPLE_TINY=1)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from lightly_topo.data import read_subjects
from lightly_topo.data.synthetic import SyntheticBrains, write_brats_folder
from lightly_topo.methods import build_config
from lightly_topo.methods.train import pretrain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="BraTS-style folder (default: synthetic)")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary folder)")
    parser.add_argument("--tiny", action="store_true", help="shrink to seconds on CPU")
    args = parser.parse_args()
    tiny = args.tiny or os.environ.get("LIGHTLY_TOPO_EXAMPLE_TINY") == "1"
    work = Path(tempfile.mkdtemp(prefix="taco_brats_"))
    out = args.out or work / "run"

    data = args.data
    if data is None:
        subjects, size = (4, 32) if tiny else (24, 64)
        brains = SyntheticBrains(subjects, size=size, modalities=("t1", "t1ce", "t2", "flair"))
        data = write_brats_folder(brains, work / "brats")
        print(f"wrote {subjects} synthetic BraTS-style cases to {data}")

    cases = read_subjects(data, layout="brats")
    print(f"{data}: {len(cases)} cases, e.g. {cases[0].subject_id}: {cases[0].modalities}")

    crop, steps = (16, 2) if tiny else (64, 300)
    config = build_config(
        {
            "method": "taco",
            "out": str(out),
            "data": {
                "path": str(data),
                "layout": "brats",
                "crop_size": crop,
                "batch_size": 2 if tiny else 4,
                "cache_dir": str(work / "cache"),  # decoded + z-scored volumes, reused
            },
            "model": {
                "backbone": "resenc",
                "backbone_kwargs": {"features": [8, 16, 32], "blocks_per_stage": 1},
            },
            "loss": {"mask_patch": 4 if tiny else 8},
            # intra/inter weights, k and margins keep the released defaults (10, 10, 5, 0.05/0.4)
            "topo": {"level": 2},  # stride 4: (crop / 4)^3 tokens per view
            "trainer": {
                "max_steps": steps,
                "accelerator": "cpu" if tiny else "auto",
                "checkpoint_every": steps,
                "log_every": 1,
                "progress": not tiny,
            },
        }
    )
    result = pretrain(config)
    for step, loss in result.losses:
        print(f"step {step:4d}  loss {loss:.4f}")
    print(f"checkpoint: {result.last_checkpoint}")
    print(f"encoder:    {result.encoder_path}")
    print("done")


if __name__ == "__main__":
    main()
