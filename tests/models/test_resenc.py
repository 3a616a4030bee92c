from __future__ import annotations

import pytest
import torch

from lightly_topo.models import InputShapeError, ModelConfigError, ResEncBackbone


def test_levels_have_declared_channels_and_strides() -> None:
    net = ResEncBackbone(
        features=(4, 8, 16, 32), blocks_per_stage=(1, 2, 1, 1), strides=(1, 2, 2, 2)
    )
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        feats = net.forward_features(x)
    assert net.feature_channels == (4, 8, 16, 32)
    assert net.feature_strides == (1, 2, 4, 8)
    for f, c, s in zip(feats, net.feature_channels, net.feature_strides):
        assert f.shape == (2, c, 32 // s, 32 // s, 32 // s)
    assert net.pool(feats).shape == (2, 32) == (2, net.embed_dim)
    assert len(net.stages[1]) == 2


def test_default_is_the_nnunet_layout_down_to_stride_16() -> None:
    net = ResEncBackbone()
    assert net.feature_strides == (1, 2, 4, 8, 16)
    assert net.size_divisor == 16


def test_custom_strides_and_rebuild_from_config() -> None:
    net = ResEncBackbone(in_channels=3, features=(4, 8), blocks_per_stage=1, strides=(2, 2))
    assert net.feature_strides == (2, 4)
    assert net.forward_features(torch.randn(1, 3, 16, 8, 12))[-1].shape == (1, 8, 4, 2, 3)
    ResEncBackbone(**net.config).load_state_dict(net.state_dict())


def test_bad_input_and_config() -> None:
    net = ResEncBackbone(features=(4, 8), blocks_per_stage=1)
    with pytest.raises(InputShapeError, match="divisible by 2"):
        net(torch.randn(1, 1, 15, 16, 16))
    with pytest.raises(ModelConfigError, match="same length"):
        ResEncBackbone(features=(4, 8), blocks_per_stage=(1, 1, 1))
