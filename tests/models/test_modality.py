from __future__ import annotations

import pytest
import torch

from lightly_topo.models import (
    InputShapeError,
    ModelConfigError,
    MultiModalEncoder,
    ResEncBackbone,
    build_backbone,
)


def _backbone(in_channels: int = 1) -> ResEncBackbone:
    torch.manual_seed(0)
    return ResEncBackbone(in_channels=in_channels, features=(4, 8), blocks_per_stage=1)


MASK = torch.tensor([[True, False, True], [False, True, False]])


def test_shared_mode_encodes_each_available_modality_and_fuses_by_masked_mean() -> None:
    enc = MultiModalEncoder(_backbone(), mode="shared", num_modalities=3)
    image = torch.randn(2, 3, 16, 16, 16)
    per_mod = enc.forward_modalities(image, MASK)
    assert [f.shape for f in per_mod] == [(2, 3, 4, 16, 16, 16), (2, 3, 8, 8, 8, 8)]
    for level in per_mod:
        assert torch.count_nonzero(level[~MASK]) == 0
    # each entry is the backbone on that modality alone
    alone = enc.backbone.forward_features(image[0, 2][None, None])
    assert torch.allclose(per_mod[-1][0, 2], alone[-1][0], atol=1e-5)
    fused = enc.forward_fused(image, MASK)
    assert torch.allclose(fused[-1][0], (per_mod[-1][0, 0] + per_mod[-1][0, 2]) / 2, atol=1e-5)
    assert torch.allclose(fused[-1][1], per_mod[-1][1, 1], atol=1e-5)
    emb = enc.embed(image, MASK)
    assert emb.shape == (2, enc.embed_dim) == (2, 8)
    per_mod_emb = enc.embed_modalities(image, MASK)
    assert per_mod_emb.shape == (2, 3, 8)
    assert torch.allclose(emb[0], per_mod_emb[0, MASK[0]].mean(0), atol=1e-5)


@pytest.mark.parametrize("mode", ["shared", "stacked"])
def test_masked_modalities_change_nothing(mode: str) -> None:
    enc = MultiModalEncoder(_backbone(1 if mode == "shared" else 3), mode=mode, num_modalities=3)
    image = torch.randn(2, 3, 16, 16, 16)
    other = image.clone()
    other[~MASK] = torch.randn_like(other[~MASK]) * 50
    for a, b in zip(enc.forward_fused(image, MASK), enc.forward_fused(other, MASK)):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(enc(image, MASK), enc(other, MASK), atol=1e-5)
    # an available modality does change the result
    other[0, 0] += 1.0
    assert not torch.allclose(enc(image, MASK), enc(other, MASK), atol=1e-4)


def test_stacked_mode_has_no_per_modality_features_and_checks_channels() -> None:
    enc = MultiModalEncoder(_backbone(3), mode="stacked", num_modalities=3)
    assert enc.forward_fused(torch.randn(2, 3, 16, 16, 16), MASK)[-1].shape == (2, 8, 8, 8, 8)
    with pytest.raises(ModelConfigError, match="mode='shared'"):
        enc.forward_modalities(torch.randn(2, 3, 16, 16, 16), MASK)
    with pytest.raises(ModelConfigError, match="in_channels=3"):
        MultiModalEncoder(_backbone(1), mode="stacked", num_modalities=3)
    with pytest.raises(ModelConfigError, match="mode"):
        MultiModalEncoder(_backbone(1), mode="concat", num_modalities=3)  # type: ignore[arg-type]


def test_bad_batches() -> None:
    enc = MultiModalEncoder(_backbone(), num_modalities=3)
    with pytest.raises(InputShapeError, match=r"samples \[1\]"):
        enc.embed(torch.randn(2, 3, 16, 16, 16), torch.tensor([[True, False, False], [False] * 3]))
    with pytest.raises(InputShapeError, match="M=3"):
        enc.embed(torch.randn(2, 2, 16, 16, 16), MASK[:, :2])
    with pytest.raises(InputShapeError, match="bool mask"):
        enc.embed(torch.randn(2, 3, 16, 16, 16), MASK.float())


def test_shared_mode_trains_under_bf16_autocast() -> None:
    enc = MultiModalEncoder(_backbone(), num_modalities=3)
    image = torch.randn(2, 3, 8, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = enc.forward_modalities(image, MASK)[-1].float().square().mean()
        loss = loss + enc.embed(image, MASK).float().sum()
    loss.backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_encode_gives_both_heads_from_one_pass_and_sizes_a_lightly_head() -> None:
    from lightly.models.modules import SimCLRProjectionHead

    torch.manual_seed(0)
    backbone = build_backbone("resenc", features=(4, 8, 16), blocks_per_stage=1)
    encoder = MultiModalEncoder(backbone, num_modalities=3).eval()
    image = torch.randn(2, 3, 16, 16, 16)
    mask = torch.tensor([[True, False, True], [True, True, True]])
    with torch.no_grad():
        out = encoder.encode(image, mask, levels=[1, -1])
        assert torch.equal(out.pooled, encoder.embed(image, mask))
        per_modality = encoder.forward_modalities(image, mask)
    assert out.levels == (1, 2)
    assert torch.equal(out.dense[0], per_modality[1]) and torch.equal(out.dense[1], per_modality[2])
    assert [encoder.channels(level) for level in (0, 1, -1)] == [4, 8, 16]
    assert encoder.stride(-1) == backbone.feature_strides[-1]
    assert out.dense[1].shape[2] == encoder.channels(-1)
    head = SimCLRProjectionHead(encoder.embed_dim, 32, 16)
    assert head(out.pooled).shape == (2, 16)


def test_an_unknown_level_names_the_levels_there_are() -> None:
    encoder = MultiModalEncoder(
        build_backbone("resenc", features=(4, 8), blocks_per_stage=1), num_modalities=2
    )
    with pytest.raises(ModelConfigError, match=r"no feature level 5.*0: 4 channels, stride"):
        encoder.channels(5)
    stacked = MultiModalEncoder(
        build_backbone("resenc", in_channels=2, features=(4, 8), blocks_per_stage=1),
        mode="stacked",
        num_modalities=2,
    )
    with pytest.raises(ModelConfigError, match="needs mode='shared'"):
        stacked.encode(torch.randn(1, 2, 8, 8, 8), torch.ones(1, 2, dtype=torch.bool))
