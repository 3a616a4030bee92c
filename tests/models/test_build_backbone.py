from __future__ import annotations

import pytest
import torch

from lightly_topo.models import (
    BACKBONES,
    Backbone3D,
    ModelConfigError,
    UnknownBackboneError,
    build_backbone,
)

TINY = {
    "swin": {"feature_size": 12, "depths": (1, 1, 1, 1), "window_size": 4},
    "resenc": {"features": (4, 8, 16), "blocks_per_stage": 1},
    "vit": {"img_size": 32, "patch_size": 8, "embed_dim": 48, "depth": 1, "num_heads": 3},
}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_honours_the_interface_on_32_cubed(name: str) -> None:
    net = build_backbone(name, **TINY[name])
    assert isinstance(net, Backbone3D) and net.name == name
    x = torch.randn(1, 1, 32, 32, 32)
    feats = net.forward_features(x)
    assert [f.shape for f in feats] == [
        (1, c, 32 // s, 32 // s, 32 // s) for c, s in zip(net.feature_channels, net.feature_strides)
    ]
    emb = net(x)
    assert emb.shape == (1, net.embed_dim)
    assert torch.allclose(emb, net.pool(feats), atol=1e-5)
    emb.sum().backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None and n != "mask_token"]
    assert no_grad == []


def test_unknown_name_lists_choices_and_close_match() -> None:
    with pytest.raises(UnknownBackboneError, match=r"'resenc'.*'resenc'|Did you mean 'resenc'"):
        build_backbone("resnec")
    with pytest.raises(UnknownBackboneError, match="swin"):
        build_backbone("unet")


def test_bad_kwargs_name_the_backbone() -> None:
    with pytest.raises(ModelConfigError, match="'swin'"):
        build_backbone("swin", feature_sise=12)
