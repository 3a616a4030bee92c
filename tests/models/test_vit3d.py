from __future__ import annotations

import pytest
import torch
from lightly.models import utils
from lightly.models.modules.masked_vision_transformer import MaskedVisionTransformer

from lightly_topo.models import (
    InputShapeError,
    MAEDecoder3D,
    ModelConfigError,
    ViT3D,
    get_3d_sincos_pos_embed,
    patchify3d,
)

TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 48, "depth": 2, "num_heads": 3}


@pytest.fixture
def vit() -> ViT3D:
    torch.manual_seed(0)
    return ViT3D(**TINY).eval()


def test_is_a_lightly_masked_vit_with_a_3d_positional_embedding(vit: ViT3D) -> None:
    assert isinstance(vit, MaskedVisionTransformer)
    assert vit.grid_size == (4, 4, 4) and vit.sequence_length == 65
    assert torch.equal(vit.pos_embed[0], get_3d_sincos_pos_embed(4, 48))
    assert "pos_embed" not in vit.state_dict()  # fixed, rebuilt from the config


def test_dense_features_are_the_token_grid(vit: ViT3D) -> None:
    x = torch.randn(2, 1, 32, 32, 32)
    (feat,) = vit.forward_features(x)
    assert feat.shape == (2, 48, 4, 4, 4)
    tokens = vit.encode(x)[:, 1:]  # drop the class token
    assert torch.allclose(feat.flatten(2).transpose(1, 2), tokens, atol=1e-5)
    assert torch.allclose(vit(x), tokens.mean(1), atol=1e-5)


def test_token_dropping_ignores_dropped_patches(vit: ViT3D) -> None:
    x = torch.randn(2, 1, 32, 32, 32)
    idx_keep, idx_mask = utils.random_token_mask((2, vit.sequence_length), mask_ratio=0.75)
    out = vit.encode(x, idx_keep=idx_keep)
    assert out.shape == (2, idx_keep.shape[1], 48)
    assert (idx_keep[:, 0] == 0).all()  # class token kept
    # overwrite every dropped patch of sample 0: the encoding does not change
    patch = int(idx_mask[0, 0]) - 1
    d, h, w = patch // 16, (patch // 4) % 4, patch % 4
    y = x.clone()
    y[0, :, d * 8 : d * 8 + 8, h * 8 : h * 8 + 8, w * 8 : w * 8 + 8] = 100.0
    assert torch.allclose(vit.encode(y, idx_keep=idx_keep), out, atol=1e-5)
    # ... while it changes without dropping
    assert not torch.allclose(vit.encode(y), vit.encode(x), atol=1e-3)
    # masking with the mask token hides the patch content too
    masked = vit.encode(x, idx_mask=idx_mask)
    assert torch.allclose(vit.encode(y, idx_mask=idx_mask), masked, atol=1e-5)


def test_mae_forward_backward_under_bf16_autocast(vit: ViT3D) -> None:
    vit.train()
    decoder = MAEDecoder3D(
        vit.grid_size, 8, embed_dim=48, decoder_embed_dim=24, decoder_depth=1, decoder_num_heads=2
    )
    x = torch.randn(2, 1, 32, 32, 32)
    idx_keep, idx_mask = utils.random_token_mask((2, vit.sequence_length), mask_ratio=0.75)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = decoder(vit.encode(x, idx_keep=idx_keep), idx_keep, idx_mask)
        target = utils.get_at_index(patchify3d(x, 8), idx_mask - 1)
        loss = (pred.float() - target).pow(2).mean()
        emb = vit(x, idx_keep=idx_keep)
    assert pred.shape == (2, idx_mask.shape[1], 512)
    (loss + emb.float().sum()).backward()
    for module in (vit, decoder):
        for name, p in module.named_parameters():
            if module is vit and name == "mask_token":
                continue  # token dropping, not masking: the mask token is unused
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert vit.patch_embed.weight.grad.abs().sum() > 0


def test_other_grids_multiple_levels_and_learned_embedding() -> None:
    vit = ViT3D(**{**TINY, "depth": 3}, feature_blocks=(0, -1), pos_embed="learn")
    feats = vit.forward_features(torch.randn(1, 1, 48, 32, 16))
    assert vit.feature_channels == (48, 48) and vit.feature_strides == (8, 8)
    assert [f.shape for f in feats] == [(1, 48, 6, 4, 2)] * 2
    assert "pos_embed" in vit.state_dict()
    sincos = ViT3D(**TINY, class_token=False)
    assert sincos.sequence_length == 64
    assert sincos.encode(torch.randn(1, 1, 16, 32, 40)).shape == (1, 2 * 4 * 5, 48)


def test_bad_configs_and_inputs() -> None:
    with pytest.raises(ModelConfigError, match="even embed_dim"):
        ViT3D(**{**TINY, "embed_dim": 45, "num_heads": 3})
    with pytest.raises(ModelConfigError, match="divisible by patch_size"):
        ViT3D(**{**TINY, "img_size": 36})
    with pytest.raises(ModelConfigError, match="feature_blocks"):
        ViT3D(**TINY, feature_blocks=(5,))
    with pytest.raises(InputShapeError, match="divisible by 8"):
        ViT3D(**TINY)(torch.randn(1, 1, 32, 32, 30))
