from __future__ import annotations

import pytest
import torch

from lightly_topo.models import Backbone3D, InputShapeError, ModelConfigError, SwinBackbone

TINY = {"feature_size": 12, "depths": (1, 1, 1, 1), "window_size": 4}


def test_levels_have_declared_channels_and_strides() -> None:
    net = SwinBackbone(**TINY)
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        feats = net.forward_features(x)
        emb = net(x)
    assert net.feature_channels == (12, 24, 48, 96, 192)
    assert net.feature_strides == (2, 4, 8, 16, 32)
    assert len(feats) == net.num_levels == 5
    for f, c, s in zip(feats, net.feature_channels, net.feature_strides):
        assert f.shape == (2, c, 32 // s, 32 // s, 32 // s)
    assert emb.shape == (2, net.embed_dim) == (2, 192)
    assert torch.allclose(emb, net.pool(feats))
    assert isinstance(net, Backbone3D)


def test_non_cubic_input_and_rebuild_from_config() -> None:
    net = SwinBackbone(in_channels=2, **TINY)
    with torch.no_grad():
        feats = net.forward_features(torch.randn(1, 2, 32, 64, 32))
    assert feats[-1].shape == (1, 192, 1, 2, 1)
    copy = SwinBackbone(**net.config)
    assert copy.config == net.config
    copy.load_state_dict(net.state_dict())


def test_bad_input_and_config_raise_clear_errors() -> None:
    net = SwinBackbone(**TINY)
    with pytest.raises(InputShapeError, match="divisible by 32"):
        net.forward_features(torch.randn(1, 1, 32, 32, 40))
    with pytest.raises(InputShapeError, match="in_channels=1"):
        net.forward_features(torch.randn(1, 2, 32, 32, 32))
    with pytest.raises(InputShapeError, match=r"\(B, C, D, H, W\)"):
        net.forward_features(torch.randn(1, 32, 32, 32))
    with pytest.raises(ModelConfigError, match="num_heads"):
        SwinBackbone(feature_size=10)
