from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch
from monai.networks.nets import SwinUNETR

from lightly_topo import checkpoint
from lightly_topo.checkpoint import (
    BackboneMismatchError,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    load_into_monai_swinunetr,
    load_pretrained,
    remap_state_dict_keys,
    save_pretrained,
)
from lightly_topo.models import MultiModalEncoder, ResEncBackbone, SwinBackbone, build_backbone

META = {
    "method": "taco",
    "modalities": ["t1", "t1ce", "t2", "flair"],
    "patch_size": (32, 32, 32),
    "spacing": 1.0,
    "normalization": {"name": "zscore", "nonzero": True},
    "training_steps": 123,
}


def _resenc(features: tuple[int, ...] = (4, 8)) -> ResEncBackbone:
    return ResEncBackbone(features=features, blocks_per_stage=1)


def _tiny_swin(**kwargs: object) -> SwinBackbone:
    torch.manual_seed(0)
    return SwinBackbone(feature_size=12, depths=(1, 1, 1, 1), **kwargs)  # type: ignore[arg-type]


def test_round_trip_rebuilds_the_backbone_with_equal_weights_and_metadata(tmp_path: Path) -> None:
    net = _resenc()
    path = save_pretrained(net, tmp_path / "sub" / "enc.pt", **META, extra={"seed": 7})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "lightly_topo.pretrained" and raw["format_version"] == 1
    result = load_pretrained(path)
    assert isinstance(result.model, ResEncBackbone)
    assert result.model.config == net.config
    for key, value in net.state_dict().items():
        assert torch.equal(result.model.state_dict()[key], value), key
    meta = result.metadata
    assert meta["method"] == "taco" and meta["training_steps"] == 123
    assert meta["backbone"] == {"name": "resenc", "config": net.config}
    assert meta["modalities"] == META["modalities"]
    assert meta["patch_size"] == [32, 32, 32] and meta["spacing"] == [1.0, 1.0, 1.0]
    assert meta["normalization"] == {"name": "zscore", "nonzero": True}
    assert meta["extra"] == {"seed": 7}
    assert meta["package_version"] and meta["torch_version"] == torch.__version__
    assert result.missing_keys == result.unexpected_keys == []
    assert [p.name for p in path.parent.iterdir()] == ["enc.pt"]  # no temporary file left


def test_multimodal_encoder_is_rebuilt_with_its_mode(tmp_path: Path) -> None:
    enc = MultiModalEncoder(
        ResEncBackbone(in_channels=4, features=(4,), blocks_per_stage=1),
        mode="stacked",
        num_modalities=4,
    )
    path = save_pretrained(enc, tmp_path / "mm.pt", **META)
    model = load_pretrained(path).model
    assert isinstance(model, MultiModalEncoder)
    assert model.mode == "stacked" and model.num_modalities == 4
    x, mask = torch.randn(1, 4, 8, 8, 8), torch.tensor([[True, True, False, True]])
    assert torch.allclose(model.embed(x, mask), enc.embed(x, mask))
    # and it loads into a given encoder's backbone
    other = MultiModalEncoder(
        ResEncBackbone(in_channels=4, features=(4,), blocks_per_stage=1),
        mode="stacked",
        num_modalities=4,
    )
    load_pretrained(path, other)
    assert torch.allclose(other.embed(x, mask), enc.embed(x, mask))


def test_prefixes_are_remapped_and_key_report(tmp_path: Path) -> None:
    net = _resenc()
    state = {f"module.backbone.{k}": v for k, v in net.state_dict().items()}
    state["module.projection_head.weight"] = torch.zeros(2, 2)
    path = tmp_path / "lightning_like.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    target = _resenc()
    with pytest.raises(CheckpointMismatchError, match=r"unexpected key.*projection_head"):
        load_pretrained(path, target)
    result = load_pretrained(path, target, strict=False)
    assert result.unexpected_keys == ["module.projection_head.weight"]
    assert result.missing_keys == [] and result.metadata == {}
    assert result.remapped_keys["module.backbone.stem.conv.weight"] == "stem.conv.weight"
    for key, value in net.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)
    with pytest.raises(CheckpointError, match="model="):
        load_pretrained(path)  # no metadata: cannot rebuild


def test_remapping_both_directions() -> None:
    mapping, unexpected = remap_state_dict_keys(
        ["encoder.a.w", "swinViT.patch_embed.w", "b.w", "head.w"],
        ["backbone.a.w", "patch_embed.w", "b.w"],
    )
    assert mapping == {
        "encoder.a.w": "backbone.a.w",
        "swinViT.patch_embed.w": "patch_embed.w",
        "b.w": "b.w",
    }
    assert unexpected == ["head.w"]


def test_shape_mismatch_and_missing_keys_are_refused(tmp_path: Path) -> None:
    path = save_pretrained(_resenc((4, 8)), tmp_path / "a.pt", **META)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"stem\.conv\.weight: checkpoint \(4, 1, 3, 3, 3\) vs model \(6, 1, 3, 3, 3\)",
    ):
        load_pretrained(path, _resenc((6, 8)))
    with pytest.raises(CheckpointMismatchError, match="missing key"):
        load_pretrained(path, _resenc((4, 8, 16)))
    result = load_pretrained(path, _resenc((4, 8, 16)), strict=False)
    assert result.missing_keys and all(k.startswith("stages.2.") for k in result.missing_keys)


def test_checkpoint_of_another_backbone_is_refused(tmp_path: Path) -> None:
    path = save_pretrained(_resenc(), tmp_path / "resenc.pt", **META)
    with pytest.raises(BackboneMismatchError, match="'resenc' backbone but the model is a 'swin'"):
        load_pretrained(path, _tiny_swin())
    with pytest.raises(BackboneMismatchError, match="only 'swin'"):
        load_into_monai_swinunetr(
            path, SwinUNETR(in_channels=1, out_channels=2, feature_size=12, depths=(1, 1, 1, 1))
        )


def test_truncated_corrupt_missing_and_unsafe_files(tmp_path: Path) -> None:
    path = save_pretrained(_resenc(), tmp_path / "enc.pt", **META)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match=r"truncated\.pt") as info:
        load_pretrained(truncated)
    assert info.value.path == truncated
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CorruptCheckpointError, match=r"garbage\.pt"):
        load_pretrained(garbage)
    # flip one byte inside the largest tensor's stored bytes
    with zipfile.ZipFile(path) as zf:
        member = max(
            (i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size
        )
    local = member.header_offset
    name_len = int.from_bytes(data[local + 26 : local + 28], "little")
    extra_len = int.from_bytes(data[local + 28 : local + 30], "little")
    flipped = bytearray(data)
    flipped[local + 30 + name_len + extra_len + member.file_size // 2] ^= 0xFF
    corrupt = tmp_path / "flipped.pt"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(CorruptCheckpointError, match=r"flipped\.pt"):
        load_pretrained(corrupt)
    with pytest.raises(CheckpointNotFoundError, match=r"nothing\.pt"):
        load_pretrained(tmp_path / "nothing.pt")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": _Opaque()}, unsafe)
    with pytest.raises(CorruptCheckpointError, match="weights_only=True"):
        load_pretrained(unsafe, _resenc())


class _Opaque:
    pass


def test_atomic_write_keeps_the_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_pretrained(_resenc(), tmp_path / "enc.pt", **META)
    before = path.read_bytes()

    def failing_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(_resenc(), path, **META)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["enc.pt"]


def test_bad_metadata_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="extra\\['arr'\\] is a Tensor"):
        save_pretrained(_resenc(), tmp_path / "x.pt", **META, extra={"arr": torch.zeros(2)})
    with pytest.raises(ValueError, match="patch_size"):
        save_pretrained(_resenc(), tmp_path / "x.pt", **{**META, "patch_size": (32, 32)})
    with pytest.raises(ValueError, match="backbone_config"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "x.pt", **META)
    assert not (tmp_path / "x.pt").exists()


def test_swin_encoder_loads_into_monai_swinunetr_with_equal_outputs(tmp_path: Path) -> None:
    enc = _tiny_swin(window_size=4).eval()
    path = save_pretrained(enc, tmp_path / "swin.pt", **META)
    config = {"out_channels": 2, "feature_size": 12, "depths": (1, 1, 1, 1), "window_size": 4}
    torch.manual_seed(1)
    net = SwinUNETR(in_channels=1, **config).eval()
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        ours = enc.forward_features(x)
        assert not torch.allclose(net.swinViT(x, True)[-1], ours[-1])
        result = load_into_monai_swinunetr(path, net)
        assert result.missing_keys == [] and result.unexpected_keys == []
        theirs = net.swinViT(x, True)
        assert len(theirs) == len(ours)
        for a, b in zip(ours, theirs):
            assert torch.allclose(a, b, atol=1e-6)
        # four-channel SwinUNETR: the single-channel weights are spread over the channels
        net4 = SwinUNETR(in_channels=4, **config).eval()
        with pytest.raises(CheckpointMismatchError, match=r"patch_embed\.proj\.weight"):
            load_into_monai_swinunetr(path, net4)
        load_into_monai_swinunetr(path, net4, expand_in_channels=True)
        same = net4.swinViT(x.expand(1, 4, 32, 32, 32), True)[-1]
        assert torch.allclose(same, ours[-1], atol=1e-5)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("swin", {"feature_size": 12, "depths": (1, 1, 1, 1), "window_size": 4}),
        ("resenc", {"features": (4, 8), "blocks_per_stage": (1, 2)}),
        ("vit", {"img_size": 32, "patch_size": 16, "embed_dim": 24, "depth": 1, "num_heads": 2}),
    ],
)
def test_every_backbone_is_rebuilt_from_its_checkpoint(
    tmp_path: Path, name: str, kwargs: dict[str, object]
) -> None:
    net = build_backbone(name, **kwargs).eval()
    path = save_pretrained(net, tmp_path / f"{name}.pt", **META)
    rebuilt = load_pretrained(path).model.eval()
    assert type(rebuilt) is type(net) and rebuilt.config == net.config
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))
