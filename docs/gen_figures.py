"""Draw the method figure of the docs: ``docs/assets/taco_tokens.png``.

Two synthetic subjects (``SyntheticBrains``), two modalities (T1 and FLAIR), the dense
features of a small randomly initialised 3D encoder (stride 4: a 16^3 token grid at 64^3),
and the neighbour searches of the TACO losses, run with the losses' own code
(``lightly_topo.loss._ops``):

* intra-instance: the ``k`` nearest tokens of an anchor in subject p's T1 features
  (Euclidean, as :class:`~lightly_topo.loss.CrossModalTripletLoss`), shown on T1 and, at the
  same places, on p's FLAIR, where the loss asks them to stay the anchor's nearest;
* inter-instance: the mutual nearest neighbours (cosine) of p's T1 tokens and q's FLAIR
  tokens, the anchor's pseudo-correspondence ``u`` in q and the positives (the partners of
  the anchor's matched cosine neighbours), as in
  :class:`~lightly_topo.loss.PseudoCorrespondenceLoss`.

Run from the repository root (about half a minute on a CPU; the figure is committed):

    python docs/gen_figures.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import ConnectionPatch, Rectangle

from lightly_topo.data.synthetic import SyntheticBrains
from lightly_topo.loss import _ops
from lightly_topo.loss._tokens import as_tokens
from lightly_topo.models import build_backbone

SIZE = 64
STRIDE = 4
K = 5
GRID = SIZE // STRIDE


def token_xyz(index: int) -> tuple[int, int, int]:
    """Token index (C order over the ``(D, H, W)`` token grid) to token coordinates."""
    x, y, z = np.unravel_index(index, (GRID, GRID, GRID))
    return int(x), int(y), int(z)


def encode(encoder: torch.nn.Module, volume: torch.Tensor) -> torch.Tensor:
    """Tokens ``(1, N, C)`` of one single-channel volume ``(1, D, H, W)`` at stride 4."""
    with torch.no_grad():
        dense = encoder.forward_features(volume[None])[-1]  # (1, C, 16, 16, 16)
    return as_tokens(dense, "dense")


def token_foreground(anatomy: torch.Tensor) -> torch.Tensor:
    """Tokens ``(1, N)`` whose 4^3 block is at least half inside the head."""
    head = (anatomy > 0).float()[None]  # (1, 1, D, H, W)
    frac = torch.nn.functional.avg_pool3d(head, STRIDE, STRIDE)
    return (frac >= 0.5).flatten(1)


def show_slice(ax: plt.Axes, volume: torch.Tensor, z_token: int, title: str) -> None:
    """Axial slice through the centre of token row ``z_token``; x right, y (anterior) up."""
    z = z_token * STRIDE + STRIDE // 2
    image = volume[0, :, :, z].numpy().T
    ax.imshow(image, cmap="gray", origin="lower", interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def centre(x: int, y: int) -> tuple[float, float]:
    return x * STRIDE + (STRIDE - 1) / 2, y * STRIDE + (STRIDE - 1) / 2


def mark_tokens(
    ax: plt.Axes, tokens: list[int], z_shown: int, color: str, label: str | None = None
) -> None:
    """Token squares: filled edge on the shown slice, dashed (with dz) on other slices."""
    for n, t in enumerate(tokens):
        x, y, z = token_xyz(t)
        on_slice = z == z_shown
        ax.add_patch(
            Rectangle(
                (x * STRIDE - 0.5, y * STRIDE - 0.5),
                STRIDE,
                STRIDE,
                fill=False,
                edgecolor=color,
                linewidth=2.0 if on_slice else 1.2,
                linestyle="-" if on_slice else "--",
                label=label if n == 0 else None,
            )
        )
        if not on_slice:
            cx, cy = centre(x, y)
            ax.text(cx + 3, cy + 3, f"{z - z_shown:+d}", color=color, fontsize=7)


def mark_anchor(ax: plt.Axes, token: int, color: str, label: str) -> tuple[float, float]:
    x, y, _ = token_xyz(token)
    cx, cy = centre(x, y)
    ax.plot(cx, cy, marker="*", markersize=14, color=color, markeredgecolor="black", label=label)
    return cx, cy


def main() -> None:
    parser = argparse.ArgumentParser(description="Draw docs/assets/taco_tokens.png.")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "assets" / "taco_tokens.png"
    )
    args = parser.parse_args()
    torch.manual_seed(0)

    brains = SyntheticBrains(3, size=SIZE, modalities=("t1", "flair"), seed=0)
    p, q = brains.generate(1), brains.generate(2)  # a tumour and a white-matter lesion subject
    item_p, item_q = brains[1], brains[2]
    encoder = build_backbone("resenc", features=(8, 16, 32), blocks_per_stage=1).eval()

    a_p = encode(encoder, item_p["images"]["t1"])
    b_p = encode(encoder, item_p["images"]["flair"])
    b_q = encode(encoder, item_q["images"]["flair"])
    mask_p, mask_q = token_foreground(p.anatomy), token_foreground(q.anatomy)
    n = a_p.shape[1]

    # inter-instance: mutual nearest neighbours of p's T1 tokens and q's FLAIR tokens (cosine)
    nn_ab, _, matched_a, matched_b = _ops.mutual_nearest_neighbours(a_p, b_q, mask_p, mask_q)
    every = torch.arange(n)[None]
    nn_cos, found_cos = _ops.knn(a_p, every, mask_p, K, metric="cosine")
    nn_euc, _ = _ops.knn(a_p, every, mask_p, K, metric="euclidean")

    # anchor: a matched foreground token near the middle slice with the most matched
    # cosine neighbours (ties: nearest to the centre of the head)
    z_mid = GRID // 2
    best, anchor = (-1, 0.0), -1
    for t in range(n):
        x, y, z = token_xyz(t)
        if z != z_mid or not bool(matched_a[0, t]):
            continue
        kept = int((matched_a[0, nn_cos[0, t]] & found_cos[0, t]).sum())
        score = (kept, -float(np.hypot(x - GRID / 2, y - GRID / 2)))
        if score > best:
            best, anchor = score, t
    assert anchor >= 0, "no matched token on the middle slice"

    intra_neighbours = nn_euc[0, anchor].tolist()
    cos_neighbours = nn_cos[0, anchor][matched_a[0, nn_cos[0, anchor]]].tolist()
    partner = int(nn_ab[0, anchor])
    positives = [int(nn_ab[0, j]) for j in cos_neighbours]
    z_q = token_xyz(partner)[2]

    # cosine distances in p's FLAIR features from the anchor: neighbours vs the rest
    fl = torch.nn.functional.normalize(b_p[0], dim=-1)
    d = 1.0 - fl @ fl[anchor]
    others = mask_p[0].clone()
    others[[*intra_neighbours, anchor]] = False
    d_nb, d_rest = float(d[intra_neighbours].mean()), float(d[others].mean())
    matched_fraction = float(matched_a[0].sum() / mask_p[0].sum())

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6))
    show_slice(axes[0], item_p["images"]["t1"], z_mid, f"subject p, T1 (modality a), z = {z_mid}")
    show_slice(axes[1], item_p["images"]["flair"], z_mid, f"subject p, FLAIR (b), z = {z_mid}")
    show_slice(axes[2], item_q["images"]["flair"], z_q, f"subject q, FLAIR (b), z = {z_q}")
    show_slice(axes[3], item_q["images"]["flair"], z_q, f"subject q: matched tokens, z = {z_q}")

    mark_tokens(axes[0], intra_neighbours, z_mid, "#ffb000", f"{K} nearest in T1 features")
    anchor_xy = mark_anchor(axes[0], anchor, "#ff3030", "anchor token i")
    mark_tokens(axes[1], intra_neighbours, z_mid, "#ffb000", "same places in FLAIR")
    mark_anchor(axes[1], anchor, "#ff3030", "anchor token i")
    axes[1].text(
        2,
        2,
        f"cosine distance to i in FLAIR features:\n"
        f"  T1 neighbours {d_nb:.3f}, other tokens {d_rest:.3f}",
        color="white",
        fontsize=7.5,
        va="bottom",
        bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"},
    )
    mark_tokens(axes[2], positives, z_q, "#40c0ff", "positives: partners of i's matched neighbours")
    partner_xy = mark_anchor(axes[2], partner, "#30ff60", "pseudo-correspondence u (mutual NN)")

    overlay = np.zeros((GRID, GRID, 4))
    for t in torch.nonzero(matched_b[0]).flatten().tolist():
        x, y, z = token_xyz(t)
        if z == z_q:
            overlay[y, x] = (0.2, 1.0, 0.4, 0.55)
    axes[3].imshow(
        overlay,
        origin="lower",
        extent=(-0.5, SIZE - 0.5, -0.5, SIZE - 0.5),
        interpolation="nearest",
    )
    axes[3].text(
        2,
        2,
        f"mutual NN of p's T1 and q's FLAIR tokens:\n  {matched_fraction:.0%} of p's tokens matched",
        color="white",
        fontsize=7.5,
        va="bottom",
        bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"},
    )

    fig.add_artist(
        ConnectionPatch(
            anchor_xy,
            partner_xy,
            "data",
            "data",
            axesA=axes[0],
            axesB=axes[2],
            color="#30ff60",
            linewidth=1.2,
            linestyle=":",
            arrowstyle="->",
        )
    )
    for ax in axes[:3]:
        ax.legend(loc="upper left", fontsize=7, framealpha=0.7)
    fig.suptitle(
        "TACO tokens on synthetic brains (random-init 3D encoder, 16^3 tokens at stride 4; "
        "z: axial token slice; dashed squares lie on other slices, offset in tokens)",
        fontsize=10,
    )
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
