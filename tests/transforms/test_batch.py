"""The batched path gives the CPU path's output for the same parameters."""

from __future__ import annotations

import pytest
import torch
from transform_volumes import coordinate_volume, inside

from lightly_topo.transforms import (
    Augment3D,
    BatchAugment3D,
    RandomAffine3D,
    RandomBiasField3D,
    RandomContrast3D,
    RandomCrop3D,
    RandomElastic3D,
    RandomFlip3D,
    RandomGamma3D,
    RandomGaussianBlur3D,
    RandomGaussianNoise3D,
    RandomModalityDropout,
    RandomResizedCrop3D,
    RandomRotate90_3D,
    RandomScaleShift3D,
    TransformError,
    TransformInputError,
)

SHAPE = (16, 14, 12)


def _full_pipeline() -> dict:
    return {
        "spatial": [
            RandomResizedCrop3D(8, scale=(0.3, 1.0)),
            RandomFlip3D(p=0.5),
            RandomRotate90_3D(p=0.5),
            RandomAffine3D(degrees=15, scale=0.1, shear=0.05, translate=1.0),
            RandomElastic3D(num_control_points=4, max_displacement=1.0),
        ],
        "intensity": [
            RandomGamma3D(p=0.5),
            RandomScaleShift3D(0.1, 0.1, p=0.5),
            RandomBiasField3D(0.3, 2, p=0.5),
            RandomGaussianNoise3D((0.0, 0.1), p=0.5),
            RandomGaussianBlur3D((0.5, 1.0), p=0.5),
            RandomContrast3D(p=0.5),
        ],
        "dropout": RandomModalityDropout(p=0.5),
    }


def _batch(b: int = 3, m: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.randn(b, m, *SHAPE, generator=g)
    mask = torch.ones(b, m, dtype=torch.bool)
    mask[1, 0] = False
    mask[2, 1:] = False
    image = image * mask[:, :, None, None, None]
    labels = torch.randint(0, 5, (b, 1, *SHAPE), generator=g)
    return image, mask, labels


@pytest.mark.parametrize("kind", ["exact", "full"])
def test_cpu_and_batched_paths_agree(kind: str) -> None:
    if kind == "exact":
        cfg = {"spatial": [RandomCrop3D(8), RandomFlip3D(p=0.5), RandomRotate90_3D(p=0.7)]}
    else:
        cfg = _full_pipeline()
    batched = BatchAugment3D(**cfg)
    single = Augment3D(**cfg)
    image, mask, labels = _batch()
    params = batched.sample_params(image.shape, mask, generator=1)
    out = batched.apply_params(image, params, mask, labels)
    assert out["image"].shape == (3, 3, 8, 8, 8) and out["grid"].shape == (3, 3, 8, 8, 8)
    for b in range(3):
        ref = single.apply(image[b], mask[b], params[b], labels[b])
        torch.testing.assert_close(out["image"][b], ref.image, atol=2e-3, rtol=1e-3)
        torch.testing.assert_close(out["grid"][b], ref.grid, atol=1e-4, rtol=0)
        assert torch.equal(out["mask"][b], ref.mask)
        assert out["label_map"] is not None and ref.label_map is not None
        # Nearest neighbour may differ only where a coordinate sits on a rounding tie.
        assert (out["label_map"][b] != ref.label_map).float().mean() < 0.01


def test_batched_grid_matches_coordinate_volume_and_masks() -> None:
    aug = BatchAugment3D(**_full_pipeline())
    coords = coordinate_volume(SHAPE)
    image = coords[None].repeat(4, 1, 1, 1, 1)
    mask = torch.ones(4, 3, dtype=torch.bool)
    out = aug(image, mask, generator=0)
    assert not torch.equal(out["grid"][0], out["grid"][1])
    for b in range(4):
        assert bool(out["mask"][b].any())
        assert float(out["image"][b][~out["mask"][b]].abs().sum()) == 0.0
    spatial_only = BatchAugment3D(_full_pipeline()["spatial"])
    out = spatial_only(image, generator=0)
    for b in range(4):
        keep = inside(out["grid"][b], SHAPE)
        torch.testing.assert_close(
            out["image"][b][:, keep], out["grid"][b][:, keep], atol=2e-3, rtol=0
        )


def test_bad_batches() -> None:
    aug = BatchAugment3D([RandomCrop3D(4)])
    with pytest.raises(TransformInputError, match=r"\(B, M, D, H, W\)"):
        aug(torch.zeros(2, 8, 8, 8))
    with pytest.raises(TransformInputError, match=r"\(B, M\)"):
        aug(torch.zeros(2, 2, 8, 8, 8), mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(TransformInputError, match="no available modality"):
        aug(torch.zeros(2, 2, 8, 8, 8), mask=torch.tensor([[True, False], [False, False]]))
    rot = BatchAugment3D([RandomRotate90_3D(p=0.5, planes=[(0, 1)])])
    with pytest.raises(TransformError, match="share their shapes"):
        for seed in range(20):  # some draw mixes rotated (8, 6) and unrotated (6, 8) shapes
            rot(torch.zeros(4, 1, 6, 8, 5), generator=seed)


def test_is_a_plain_submodule() -> None:
    aug = BatchAugment3D([RandomCrop3D(4)])
    seen = []
    torch.nn.Sequential(aug).apply(lambda module: seen.append(type(module).__name__))
    assert "BatchAugment3D" in seen
