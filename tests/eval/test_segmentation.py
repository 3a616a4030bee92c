from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from torch import Tensor, nn

from lightly_topo.checkpoint import save_pretrained
from lightly_topo.data.synthetic import SyntheticBrains
from lightly_topo.eval.segmentation import (
    SegmentationConfig,
    SegmentationModel,
    UNetDecoder3D,
    evaluate_segmentation,
    fit_segmentation,
    predict_volume,
    run_segmentation,
)
from lightly_topo.eval.tasks import (
    EmptyClassError,
    IncompatibleEncoderError,
    MissingLabelError,
    TaskError,
    load_encoder,
    scratch_encoder_like,
)
from lightly_topo.models import MultiModalEncoder, build_backbone

MODALITIES = ("t1", "flair")


def tiny_encoder(seed: int = 0, num_modalities: int = 2) -> MultiModalEncoder:
    torch.manual_seed(seed)
    backbone = build_backbone("resenc", features=(8, 16, 32), strides=(1, 2, 2), blocks_per_stage=1)
    return MultiModalEncoder(backbone, mode="shared", num_modalities=num_modalities)


@pytest.fixture(scope="module")
def brains() -> list:
    # none, tumour (classes 1-3), wmh (class 4), none, tumour, wmh
    return list(SyntheticBrains(6, size=32, modalities=MODALITIES, seed=0))


def config(**kwargs) -> SegmentationConfig:
    values = dict(
        steps=8,
        patch_size=(16, 16, 16),
        batch_size=2,
        lr=1e-2,
        test_fraction=0.34,
        sw_overlap=0.0,
        sw_batch_size=4,
        seed=0,
    )
    values.update(kwargs)
    return SegmentationConfig(**values)


def test_finetune_lowers_loss_and_gives_dice_in_range(brains: list) -> None:
    encoder = tiny_encoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    result = run_segmentation(encoder, brains, config(steps=8, compute_hd95=True), init="scratch")

    history = result.history
    assert len(history) == 8
    assert sum(history[-3:]) / 3 < sum(history[:3]) / 3
    assert set(result.split["train"]).isdisjoint(result.split["test"])
    assert len(result.split["train"]) + len(result.split["test"]) == 6
    assert result.extra["num_classes"] == 5
    assert [r["subject_id"] for r in result.per_subject] == result.split["test"]
    for record in result.per_subject:
        assert len(record["dice"]) == 4
        for value in record["dice"]:
            assert math.isnan(value) or 0.0 <= value <= 1.0
        assert len(record["hd95"]) == 4
        assert all(math.isnan(v) or v >= 0 for v in record["hd95"])
    assert math.isfinite(result.metrics["mean_dice"])
    assert 0.0 <= result.metrics["mean_dice"] <= 1.0
    # the caller's encoder is untouched
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key])
    # strict JSON (NaN -> None)
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert json.loads(text)["task"] == "segmentation"


class _Background(nn.Module):
    """Predicts background everywhere."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.decoder = UNetDecoder3D((1,), num_classes)

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        logits = torch.zeros(image.shape[0], self.decoder.num_classes, *image.shape[2:])
        logits[:, 0] = 1.0
        return logits


def test_classes_missing_from_a_subject_get_nan_dice_and_are_logged(brains: list, caplog) -> None:
    cfg = config()
    with caplog.at_level(logging.INFO, logger="lightly_topo.eval"):
        records, summary = evaluate_segmentation(_Background(5), brains, [0, 1], cfg)
    none, tumour = records
    assert all(math.isnan(v) for v in none["dice"]) and math.isnan(none["mean_dice"])
    assert tumour["dice"][:3] == [0.0, 0.0, 0.0] and math.isnan(tumour["dice"][3])
    assert summary["mean_dice"] == 0.0 and summary["n_subjects"] == 2
    assert "absent" in caplog.text


class _Echo(nn.Module):
    """Returns its input channels as logits, plus a channel counting window visits."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        assert image.shape[2:] == (16, 16, 16)
        assert mask.shape == image.shape[:2]
        self.calls += image.shape[0]
        return torch.cat([image, torch.ones_like(image[:, :1])], dim=1)


def test_sliding_window_covers_a_volume_larger_than_the_patch() -> None:
    image = torch.randn(1, 2, 40, 36, 20)
    mask = torch.ones(1, 2, dtype=torch.bool)
    echo = _Echo()
    out = predict_volume(echo, image, mask, roi_size=(16, 16, 16), sw_batch_size=3, overlap=0.25)
    assert out.shape == (1, 3, 40, 36, 20)
    # every voxel is covered: the averaged echo equals the input everywhere
    assert torch.allclose(out[:, :2], image, atol=1e-5)
    assert torch.allclose(out[:, 2], torch.ones(1, 40, 36, 20))
    assert echo.calls > 8


def test_sliding_window_with_a_real_model_gives_whole_volume_logits() -> None:
    model = SegmentationModel(tiny_encoder(), num_classes=3).eval()
    image = torch.randn(1, 2, 20, 16, 24)
    mask = torch.tensor([[True, False]])
    logits = predict_volume(model, image, mask, roi_size=(16, 16, 16), sw_batch_size=4)
    assert logits.shape == (1, 3, 20, 16, 24)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("strides", [(1, 2, 4), (2, 4, 8), (16, 16, 16)])
def test_decoder_reaches_input_size(strides: tuple[int, ...]) -> None:
    decoder = UNetDecoder3D((4, 8, 12), num_classes=2, decoder_channels=6)
    features = [torch.randn(1, c, 32 // s, 32 // s, 32 // s) for c, s in zip((4, 8, 12), strides)]
    assert decoder(features, out_size=(32, 32, 32)).shape == (1, 2, 32, 32, 32)


def test_pretrained_and_scratch_starts_differ_only_in_weights(brains: list, tmp_path) -> None:
    pretrained = tiny_encoder(seed=1)
    path = save_pretrained(
        pretrained,
        tmp_path / "enc.pt",
        method="test",
        modalities=list(MODALITIES),
        patch_size=16,
        spacing=1.0,
        normalization="zscore",
        training_steps=0,
    )
    loaded = load_encoder(path, MODALITIES)
    assert loaded.modality_names == MODALITIES and loaded.mode == "shared"
    # a shared checkpoint serves the same modalities in another order, never unknown ones
    assert load_encoder(path, ("flair", "t1")).modality_names == ("flair", "t1")
    with pytest.raises(IncompatibleEncoderError, match=r"\['t2'\]"):
        load_encoder(path, ("t1", "t2"))
    scratch = scratch_encoder_like(loaded, seed=0)
    shapes = {k: v.shape for k, v in loaded.state_dict().items()}
    assert shapes == {k: v.shape for k, v in scratch.state_dict().items()}
    assert any(not torch.equal(v, scratch.state_dict()[k]) for k, v in loaded.state_dict().items())
    cfg = config(steps=2, batch_size=1)
    train = [1, 2, 4]
    _, from_ckpt = fit_segmentation(loaded, brains, train, cfg)
    _, from_module = fit_segmentation(pretrained, brains, train, cfg)
    _, from_scratch = fit_segmentation(scratch, brains, train, cfg)
    # same weights -> the very same run (same data, order, crops, decoder init) ...
    assert from_ckpt == pytest.approx(from_module, abs=1e-6)
    # ... so other weights are the only thing that changes the run
    assert from_ckpt != pytest.approx(from_scratch, abs=1e-6)
    # a fresh start is reproducible from its seed and leaves the global RNG alone
    state = torch.get_rng_state()
    again = scratch_encoder_like(loaded, seed=0)
    assert torch.equal(state, torch.get_rng_state())
    for key, value in scratch.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])


def test_dataset_without_label_maps_is_refused() -> None:
    unlabelled = list(SyntheticBrains(2, size=16, modalities=MODALITIES, lesions=False))
    with pytest.raises(MissingLabelError, match="label map"):
        fit_segmentation(tiny_encoder(), unlabelled, [0, 1], config(steps=1))


def test_class_missing_from_every_training_subject_is_refused(brains: list) -> None:
    with pytest.raises(EmptyClassError, match=r"\[5\]"):
        fit_segmentation(tiny_encoder(), brains, [0, 1, 2], config(steps=1, num_classes=6))
    # the no-lesion subject alone has no foreground class at all
    with pytest.raises(EmptyClassError):
        fit_segmentation(tiny_encoder(), brains, [0], config(steps=1))


def test_encoder_that_does_not_fit_is_refused(brains: list) -> None:
    with pytest.raises(IncompatibleEncoderError, match="3 modalities"):
        fit_segmentation(tiny_encoder(num_modalities=3), brains, [1, 2], config(steps=1))
    with pytest.raises(IncompatibleEncoderError, match="size divisor 4"):
        fit_segmentation(tiny_encoder(), brains, [1, 2], config(steps=1, patch_size=(18, 16, 16)))
    with pytest.raises(IncompatibleEncoderError, match="forward_fused"):
        fit_segmentation(nn.Conv3d(2, 2, 1), brains, [1, 2], config(steps=1))


def test_config_round_trips_through_json() -> None:
    cfg = config(num_classes=3, compute_hd95=True)
    restored = SegmentationConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert restored == cfg
    with pytest.raises(TaskError, match="unknown SegmentationConfig keys"):
        SegmentationConfig.from_dict({"stepz": 3})


def test_bad_config_is_refused() -> None:
    with pytest.raises(TaskError, match="patch_size"):
        SegmentationConfig(patch_size=(16, 16))
    with pytest.raises(TaskError, match="optimizer"):
        SegmentationConfig(optimizer="lamb")
