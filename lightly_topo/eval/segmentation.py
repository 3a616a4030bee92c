"""Segmentation fine-tuning: a U-Net style decoder on a pretrained encoder's features.

The encoder (a :class:`~lightly_topo.models.MultiModalEncoder`, shared mode by default)
gives multi-scale dense maps; :class:`UNetDecoder3D` merges them from coarse to fine (skip
connections) into per-voxel class logits. Training samples random patches (optionally
centred on foreground voxels, as nnU-Net does), flips them, and minimises Dice + cross
entropy. Whole test volumes are segmented with
:func:`monai.inferers.sliding_window_inference` and scored per subject with Dice per class,
their mean and (optionally) HD95.

Missing classes: a class absent from a test subject's label map *and* from its prediction
has no defined Dice; it is ``NaN`` for that subject and left out of the means (logged). A
class missing from *every* training subject raises :class:`EmptyClassError`.

- Ronneberger et al., U-Net: Convolutional Networks for Biomedical Image Segmentation,
  MICCAI 2015, https://arxiv.org/abs/1505.04597
- Isensee et al., nnU-Net, Nature Methods 2021, https://arxiv.org/abs/1809.10486
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from torch import Tensor, nn

from lightly_topo.eval._data import (
    ItemDataset,
    as_cache,
    crop_or_pad,
    finetune_groups,
    fit_loop,
    item_tensors,
    kept_mask,
    modality_names_of,
    prepare_fit,
    random_flip,
    random_start,
    require_label_maps,
    size_divisor,
    train,
)
from lightly_topo.eval.splits import SubjectSplit
from lightly_topo.eval.tasks import (
    EmptyClassError,
    IncompatibleEncoderError,
    TaskConfig,
    TaskError,
    TaskResult,
)

logger = logging.getLogger("lightly_topo.eval")


@dataclass
class SegmentationConfig(TaskConfig):
    """Schedule of segmentation fine-tuning (see :class:`TaskConfig` for the shared fields).

    Attributes:
        patch_size: Training patch and sliding-window size ``(D, H, W)``; multiples of
            the encoder's ``size_divisor``.
        num_classes: Classes including background 0; ``None`` infers ``max label + 1``
            from the training subjects.
        foreground_prob: Probability that a training patch is centred on a random
            foreground voxel (nnU-Net oversampling); otherwise the patch is uniform.
        decoder_channels: Channels of every decoder level; ``None`` mirrors the encoder.
        sw_batch_size: Windows per forward pass in sliding-window inference.
        sw_overlap: Overlap of neighbouring windows (fraction of the window).
        compute_hd95: Also compute the 95th-percentile Hausdorff distance (slower).
    """

    patch_size: tuple[int, int, int] = (32, 32, 32)
    num_classes: int | None = None
    foreground_prob: float = 0.33
    decoder_channels: int | None = None
    sw_batch_size: int = 2
    sw_overlap: float = 0.25
    compute_hd95: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        size = tuple(int(s) for s in self.patch_size)
        if len(size) != 3 or min(size) < 1:
            raise TaskError(
                f"SegmentationConfig.patch_size must be 3 positive sizes (D, H, W), "
                f"got {self.patch_size}"
            )
        self.patch_size = (size[0], size[1], size[2])
        if self.num_classes is not None and self.num_classes < 2:
            raise TaskError(
                f"SegmentationConfig.num_classes must be >= 2 (background + one class), "
                f"got {self.num_classes}"
            )
        if not 0.0 <= self.foreground_prob <= 1.0:
            raise TaskError(
                f"SegmentationConfig.foreground_prob must lie in [0, 1], got {self.foreground_prob}"
            )
        if not 0.0 <= self.sw_overlap < 1.0:
            raise TaskError(
                f"SegmentationConfig.sw_overlap must lie in [0, 1), got {self.sw_overlap}"
            )


class _ConvBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.InstanceNorm3d(out_channels, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.InstanceNorm3d(out_channels, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        )


class UNetDecoder3D(nn.Module):
    """U-Net style decoder over multi-scale dense feature maps.

    Starting at the coarsest level, the running map is projected (1x1x1 conv), upsampled
    (trilinear) to the next finer level's size, concatenated with that level's features
    (skip connection) and refined by two 3x3x3 conv - instance norm - LeakyReLU layers. A
    1x1x1 convolution gives class logits at the finest level, which are upsampled
    trilinearly to the input size where the finest stride is above 1 (Swin, ViT).
    Levels of equal stride (ViT) are merged without upsampling.

    Args:
        feature_channels: Channels ``C_l`` of each level, fine to coarse.
        num_classes: Output classes (background included).
        decoder_channels: Channels of every decoder level; ``None`` uses ``C_l`` of the
            level being merged.

    >>> dec = UNetDecoder3D((8, 16, 32), num_classes=3)
    >>> feats = [torch.zeros(1, 8, 16, 16, 16), torch.zeros(1, 16, 8, 8, 8),
    ...          torch.zeros(1, 32, 4, 4, 4)]
    >>> dec(feats, out_size=(16, 16, 16)).shape
    torch.Size([1, 3, 16, 16, 16])
    """

    def __init__(
        self,
        feature_channels: Sequence[int],
        num_classes: int,
        decoder_channels: int | None = None,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in feature_channels]
        if not channels:
            raise IncompatibleEncoderError("UNetDecoder3D needs at least one feature level")
        widths = [decoder_channels or c for c in channels]
        self.lateral = nn.ModuleList()
        self.blocks = nn.ModuleList()
        running = channels[-1]
        for level in range(len(channels) - 2, -1, -1):
            self.lateral.append(nn.Conv3d(running, widths[level], 1))
            self.blocks.append(_ConvBlock(widths[level] + channels[level], widths[level]))
            running = widths[level]
        self.head = nn.Conv3d(running, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, features: Sequence[Tensor], out_size: Sequence[int]) -> Tensor:
        """Logits ``(B, num_classes, *out_size)`` from features ``[(B, C_l, d_l, h_l, w_l)]``."""
        x = features[-1]
        for i, level in enumerate(range(len(features) - 2, -1, -1)):
            skip = features[level]
            x = self.lateral[i](x)
            if x.shape[2:] != skip.shape[2:]:
                x = F.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = self.blocks[i](torch.cat([x, skip], dim=1))
        logits = self.head(x)
        if tuple(logits.shape[2:]) != tuple(out_size):
            logits = F.interpolate(
                logits, size=tuple(out_size), mode="trilinear", align_corners=False
            )
        return logits


class SegmentationModel(nn.Module):
    """Encoder + :class:`UNetDecoder3D`: ``(B, M, D, H, W)`` + mask ``(B, M)`` -> logits.

    Args:
        encoder: A :class:`~lightly_topo.models.MultiModalEncoder` (``forward_fused(image,
            mask)`` returns fused fine-to-coarse maps; ``feature_channels``).
        num_classes: Output classes (background included).
        decoder_channels: See :class:`UNetDecoder3D`.
    """

    def __init__(
        self, encoder: nn.Module, num_classes: int, decoder_channels: int | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        channels = getattr(encoder, "feature_channels", None)
        if channels is None:
            raise IncompatibleEncoderError(
                f"encoder {type(encoder).__name__} has no feature_channels; segmentation needs "
                "an encoder with multi-scale dense features"
            )
        self.decoder = UNetDecoder3D(channels, num_classes, decoder_channels)

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        """Class logits ``(B, K, D, H, W)``."""
        encoder: Any = self.encoder
        features = encoder.forward_fused(image, mask)
        return self.decoder(features, out_size=image.shape[2:])


def _check_patch(encoder: nn.Module, patch_size: Sequence[int]) -> None:
    divisor = size_divisor(encoder)
    if any(s % divisor for s in patch_size):
        fixed = tuple(-(-s // divisor) * divisor for s in patch_size)
        raise IncompatibleEncoderError(
            f"SegmentationConfig.patch_size {tuple(patch_size)} is not a multiple of the "
            f"encoder's size divisor {divisor}; use e.g. patch_size={fixed}"
        )


def infer_num_classes(dataset: ItemDataset, indices: Sequence[int]) -> int:
    """``max label + 1`` over the label maps of the listed subjects (at least 2)."""
    top = 0
    for i in indices:
        top = max(top, int(dataset[i]["label_map"].max()))
    return max(top + 1, 2)


def classes_present(label_map: Tensor, num_classes: int) -> list[int]:
    """Foreground classes ``1..K-1`` with at least one voxel in ``label_map``."""
    counts = torch.bincount(label_map.flatten().clamp(0, num_classes - 1), minlength=num_classes)
    return [c for c in range(1, num_classes) if counts[c] > 0]


def check_class_coverage(
    dataset: ItemDataset, indices: Sequence[int], num_classes: int, what: str = "training set"
) -> None:
    """Raise :class:`EmptyClassError` if a foreground class has no voxel in any subject."""
    seen: set[int] = set()
    for i in indices:
        label_map = dataset[i]["label_map"]
        if int(label_map.max()) >= num_classes or int(label_map.min()) < 0:
            raise TaskError(
                f"subject {dataset[i]['subject_id']!r} has labels in "
                f"[{int(label_map.min())}, {int(label_map.max())}], outside 0..{num_classes - 1}; "
                "set SegmentationConfig.num_classes accordingly"
            )
        seen.update(classes_present(label_map, num_classes))
    empty = sorted(set(range(1, num_classes)) - seen)
    if empty:
        raise EmptyClassError(
            f"class(es) {empty} occur in no subject of the {what} ({len(indices)} subjects); "
            "use a larger label fraction, another seed, or fewer classes (num_classes)"
        )


def _sample_patch(
    dataset: ItemDataset,
    index: int,
    modality_names: Sequence[str],
    config: SegmentationConfig,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    image, mask, label_map = item_tensors(dataset[index], modality_names)
    assert label_map is not None
    shape = image.shape[1:]
    centre = None
    if (
        config.foreground_prob > 0
        and float(torch.rand(1, generator=generator)) < config.foreground_prob
    ):
        foreground = torch.nonzero(label_map[0] > 0)
        if len(foreground):
            pick = int(torch.randint(len(foreground), (1,), generator=generator))
            centre = foreground[pick].tolist()
    start = random_start(shape, config.patch_size, generator, centre)
    image = crop_or_pad(image, start, config.patch_size)
    label_map = crop_or_pad(label_map, start, config.patch_size)
    if config.flip:
        image, label_map = random_flip([image, label_map], generator)
    return image, mask, label_map


def fit_segmentation(
    encoder: nn.Module,
    dataset: ItemDataset,
    train_indices: Sequence[int],
    config: SegmentationConfig,
) -> tuple[SegmentationModel, list[float]]:
    """Fine-tune ``encoder`` + a fresh :class:`UNetDecoder3D` on the listed subjects.

    The encoder is deep-copied (the caller's module is not changed). The decoder is
    initialised, and batches, crops and flips are drawn, from ``config.seed`` only, so two
    runs that differ only in the encoder weights see the same data in the same order.

    Args:
        encoder: Multi-modal encoder (pretrained or fresh).
        dataset: Items with label maps.
        train_indices: Dataset indices of the training subjects.
        config: The schedule; ``num_classes`` ``None`` is inferred from the training set.

    Returns:
        The trained model (eval mode) and the loss of every step.

    Raises:
        MissingLabelError: A training subject without a label map.
        EmptyClassError: A foreground class with no voxel in any training subject.
        IncompatibleEncoderError: Modalities or patch size that do not fit the encoder.
    """
    encoder, dataset, modality_names = prepare_fit(
        "fit_segmentation", encoder, dataset, train_indices
    )
    _check_patch(encoder, config.patch_size)
    require_label_maps(dataset, train_indices)
    num_classes = config.num_classes or infer_num_classes(dataset, train_indices)
    check_class_coverage(dataset, train_indices, num_classes)

    device = torch.device(config.device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    indices = list(train_indices)

    def step_loss(net: nn.Module, gen: torch.Generator) -> Tensor:
        picks = torch.randint(len(indices), (config.batch_size,), generator=gen).tolist()
        patches = [_sample_patch(dataset, indices[p], modality_names, config, gen) for p in picks]
        image = torch.stack([p[0] for p in patches]).to(device)
        mask = torch.stack([p[1] for p in patches]).to(device)
        target = torch.stack([p[2] for p in patches]).to(device)
        return loss_fn(net(image, mask), target)

    def fit(model: SegmentationModel, generator: torch.Generator) -> list[float]:
        groups = finetune_groups(model.encoder, model.decoder, config)
        return fit_loop(model, groups, config, step_loss, generator)

    return train(
        config,
        lambda: SegmentationModel(_copy_module(encoder), num_classes, config.decoder_channels),
        fit,
    )


def _copy_module(module: nn.Module) -> nn.Module:
    import copy

    copied = copy.deepcopy(module)
    for param in copied.parameters():
        param.requires_grad_(True)
    return copied


@torch.no_grad()
def predict_volume(
    model: nn.Module,
    image: Tensor,
    mask: Tensor,
    roi_size: Sequence[int],
    sw_batch_size: int = 2,
    overlap: float = 0.25,
) -> Tensor:
    """Logits of whole volumes by sliding-window inference.

    Windows of ``roi_size`` tile the volume (zero-padded where it is smaller) with
    ``overlap``; overlapping logits are averaged
    (:func:`monai.inferers.sliding_window_inference`).

    Args:
        model: Maps ``(b, M, *roi_size)`` and a mask ``(b, M)`` to logits ``(b, K, *roi_size)``.
        image: Volumes ``(B, M, D, H, W)``, any size.
        mask: Modality availability ``(B, M)``; masked channels are not read by the encoder.
        roi_size: Window size ``(D, H, W)``.
        sw_batch_size: Windows per forward pass.
        overlap: Overlap of neighbouring windows.

    Returns:
        Logits ``(B, K, D, H, W)``.
    """
    was_training = model.training
    model.eval()
    outputs = []
    for b in range(image.shape[0]):
        sample_mask = mask[b : b + 1]

        def predictor(window: Tensor, sample_mask: Tensor = sample_mask) -> Tensor:
            return model(window, sample_mask.expand(window.shape[0], -1))

        out = sliding_window_inference(
            image[b : b + 1],
            roi_size=tuple(roi_size),
            sw_batch_size=sw_batch_size,
            predictor=predictor,
            overlap=overlap,
        )
        assert isinstance(out, Tensor)
        outputs.append(torch.as_tensor(out))
    model.train(was_training)
    return torch.cat(outputs)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _spacing(item: dict[str, Any]) -> tuple[float, float, float]:
    affine = item.get("affine")
    if affine is None:
        return (1.0, 1.0, 1.0)
    columns = torch.as_tensor(affine, dtype=torch.float64)[:3, :3].norm(dim=0)
    return (float(columns[0]), float(columns[1]), float(columns[2]))


def evaluate_segmentation(
    model: SegmentationModel,
    dataset: ItemDataset,
    test_indices: Sequence[int],
    config: SegmentationConfig,
    keep: Tensor | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Segment whole test volumes and score them per subject.

    Args:
        model: A trained :class:`SegmentationModel`.
        dataset: Items with label maps.
        test_indices: Dataset indices of the test subjects.
        config: Gives ``patch_size``, ``sw_batch_size``, ``sw_overlap``, ``compute_hd95``.
        keep: Optional bool ``(M,)``: modalities kept at test time (the others are masked
            out). A subject left with no modality is skipped (logged).

    Returns:
        Per-subject records ``{"subject_id", "dice": [K-1 values], "mean_dice",
        ("hd95", "mean_hd95")}`` over foreground classes ``1..K-1`` (Dice ``NaN`` where a
        class is absent from both label map and prediction; HD95 in the units of the
        affine, ``NaN`` for both empty, ``inf`` for one empty, left out of ``mean_hd95``),
        and the summary ``{"mean_dice", "dice_per_class", ("mean_hd95"), "n_subjects"}``.
        In JSON (:meth:`TaskResult.to_dict`) ``NaN`` and ``inf`` become ``None``.
    """
    from lightly_topo.eval import metrics

    dataset = as_cache(dataset)
    modality_names = modality_names_of(dataset)
    require_label_maps(dataset, test_indices)
    num_classes = model.decoder.num_classes
    device = torch.device(config.device)
    records: list[dict[str, Any]] = []
    for index in test_indices:
        item = dataset[index]
        image, mask, label_map = item_tensors(item, modality_names)
        assert label_map is not None
        kept = kept_mask(mask, keep, "segmentation", item["subject_id"])
        if kept is None:
            continue
        logits = predict_volume(
            model,
            image[None].to(device),
            kept[None].to(device),
            config.patch_size,
            config.sw_batch_size,
            config.sw_overlap,
        )
        pred = logits.argmax(1).cpu()[0]
        target = label_map[0]
        dice = [float(v) for v in metrics.dice_per_class(pred, target, num_classes)]
        record: dict[str, Any] = {
            "subject_id": str(item["subject_id"]),
            "dice": dice,
            "mean_dice": _nanmean(dice),
        }
        absent = [c + 1 for c, v in enumerate(dice) if math.isnan(v)]
        if absent:
            logger.info(
                "segmentation: class(es) %s absent from subject %r and its prediction; "
                "Dice undefined (NaN), left out of the means",
                absent,
                item["subject_id"],
            )
        if config.compute_hd95:
            spacing = _spacing(item)
            hd = [metrics.hd95(pred == c, target == c, spacing) for c in range(1, num_classes)]
            record["hd95"] = hd
            record["mean_hd95"] = _finite_mean(hd)
        records.append(record)
    summary: dict[str, Any] = {
        "n_subjects": len(records),
        "mean_dice": _nanmean([r["mean_dice"] for r in records]),
        "dice_per_class": [
            _nanmean([r["dice"][c] for r in records]) for c in range(num_classes - 1)
        ],
    }
    if config.compute_hd95:
        summary["mean_hd95"] = _finite_mean([r["mean_hd95"] for r in records])
    return records, summary


def segmentation_strata(dataset: ItemDataset, num_classes: int | None = None) -> list[str]:
    """Stratum of every subject for splitting: its foreground classes present, e.g. ``"1,2"``."""
    dataset = as_cache(dataset)
    require_label_maps(dataset, range(len(dataset)))
    k = num_classes or infer_num_classes(dataset, range(len(dataset)))
    return [
        ",".join(map(str, classes_present(dataset[i]["label_map"], k))) for i in range(len(dataset))
    ]


def run_segmentation(
    encoder: nn.Module,
    dataset: ItemDataset,
    config: SegmentationConfig,
    *,
    split: SubjectSplit | None = None,
    init: str = "pretrained",
) -> TaskResult:
    """Fine-tune on the training subjects and evaluate on whole test volumes.

    Args:
        encoder: Multi-modal encoder; not modified. For the from-scratch baseline pass
            :func:`~lightly_topo.eval.tasks.scratch_encoder_like` of the pretrained one.
        dataset: Items with label maps (e.g. :class:`~lightly_topo.data.SyntheticBrains`).
        config: The schedule.
        split: Subject split; ``None`` makes a subject-disjoint split stratified by the
            classes present in each subject (:func:`segmentation_strata`), fixed by
            ``config.seed``.
        init: Label of the encoder's start written into the result.

    Returns:
        A :class:`TaskResult` with task ``"segmentation"``, per-subject Dice and the split.

    >>> from lightly_topo.data.synthetic import SyntheticBrains
    >>> from lightly_topo.models import MultiModalEncoder, build_backbone
    >>> backbone = build_backbone("resenc", features=(8, 16, 32), blocks_per_stage=1)
    >>> encoder = MultiModalEncoder(backbone, num_modalities=2)
    >>> data = SyntheticBrains(6, size=32, modalities=("t1", "flair"))
    >>> config = SegmentationConfig(steps=2, patch_size=(16, 16, 16), test_fraction=0.34)
    >>> result = run_segmentation(encoder, data, config, init="scratch")
    >>> len(result.history), len(result.per_subject), len(result.metrics["dice_per_class"])
    (2, 2, 4)
    """
    from lightly_topo.eval import _runner  # _runner imports this module

    return _runner.run(encoder, dataset, config, split, init)
