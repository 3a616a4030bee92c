"""SimCLR views for 3D multimodal volumes."""

from __future__ import annotations

from collections.abc import Sequence

from lightly_topo.transforms.crop import RandomResizedCrop3D
from lightly_topo.transforms.dropout import RandomModalityDropout
from lightly_topo.transforms.flip import RandomFlip3D
from lightly_topo.transforms.intensity import (
    RandomContrast3D,
    RandomGamma3D,
    RandomGaussianBlur3D,
    RandomGaussianNoise3D,
    RandomScaleShift3D,
)
from lightly_topo.transforms.lightly_names import lightly_name
from lightly_topo.transforms.multi_view_transform import MultiViewTransform3D
from lightly_topo.transforms.pipeline import Augment3D
from lightly_topo.transforms.rotate90 import rotate90
from lightly_topo.transforms.view import ViewTransform3D


class SimCLRViewTransform3D(ViewTransform3D):
    """One SimCLR view of a :class:`~lightly_topo.data.VolumeItem` (see
    :class:`SimCLRTransform3D` for the augmentations and defaults)."""

    def __init__(
        self,
        input_size: int | Sequence[int] = 96,
        min_scale: float = 0.2,
        flip_prob: float = 0.2,
        rr_prob: float = 0.2,
        contrast_prob: float = 0.8,
        contrast: tuple[float, float] = (0.75, 1.25),
        scale_shift_prob: float = 0.5,
        scale_shift: float = 0.1,
        gamma_prob: float = 0.3,
        gaussian_blur: float = 0.5,
        sigmas: tuple[float, float] = (0.5, 1.0),
        noise_prob: float = 0.2,
        noise_std: tuple[float, float] = (0.0, 0.1),
        modality_dropout: float = 0.0,
        seed: int | None = None,
        *,
        size: int | Sequence[int] | None = None,
        blur_prob: float | None = None,
        blur_sigma: tuple[float, float] | None = None,
        rotate90_prob: float | None = None,
    ) -> None:
        owner = type(self).__name__
        size = lightly_name(owner, "input_size", input_size, 96, size)
        rotate90_prob = lightly_name(owner, "rr_prob", rr_prob, 0.2, rotate90_prob)
        blur_prob = lightly_name(owner, "gaussian_blur", gaussian_blur, 0.5, blur_prob)
        blur_sigma = lightly_name(owner, "sigmas", sigmas, (0.5, 1.0), blur_sigma)
        pipeline = Augment3D(
            spatial=[
                RandomResizedCrop3D(size, scale=(min_scale, 1.0)),
                RandomFlip3D(p=flip_prob),
                *rotate90(size, rotate90_prob),
            ],
            intensity=[
                RandomContrast3D(contrast, p=contrast_prob),
                RandomScaleShift3D(scale_shift, scale_shift, p=scale_shift_prob),
                RandomGamma3D(p=gamma_prob),
                RandomGaussianBlur3D(blur_sigma, p=blur_prob),
                RandomGaussianNoise3D(noise_std, p=noise_prob),
            ],
            dropout=RandomModalityDropout(modality_dropout) if modality_dropout > 0 else None,
        )
        super().__init__(pipeline, seed)


class SimCLRTransform3D(MultiViewTransform3D):
    """Two independently augmented views per subject for SimCLR [0] on 3D MRI.

    Input: a :class:`~lightly_topo.data.VolumeItem`. Output: a list of two
    :class:`~lightly_topo.transforms.View` dicts (batch them with
    :func:`~lightly_topo.transforms.collate_views`).

    Each view draws its own spatial transform (shared by all modalities of the view and its
    label map) and one intensity draw per modality:

    - random resized crop to ``size`` (scale ``(min_scale, 1)`` of the volume, aspect
      ratios ``(3/4, 4/3)``); ``size = 96`` is the 3D medical SSL crop (Swin UNETR [1]);
    - flip of each axis and a random 90-degree rotation, each with ``p = 0.2`` as in the
      Swin UNETR / MONAI pretraining recipe [1] (rotations only in planes where ``size``
      is square, so every view has shape ``size``);
    - the 3D stand-ins for SimCLR's colour jitter and blur: contrast (``p = 0.8``, as
      SimCLR's jitter), scale and shift by ``+-0.1`` (``p = 0.5``), gamma (``p = 0.3``),
      Gaussian blur with sigma 0.5 to 1 voxel (``p = 0.5``, as SimCLR's blur) and Gaussian
      noise (``p = 0.2``);
    - optional modality dropout (``modality_dropout``, off by default).

    - [0]: SimCLR, 2020, https://arxiv.org/abs/2002.05709
    - [1]: Swin UNETR self-supervised pretraining, 2022, https://arxiv.org/abs/2111.14791

    Args:
        input_size: Output size ``(d, h, w)`` (an int for a cube); alias ``size``.
        min_scale: Smallest crop volume as a fraction of the input volume.
        flip_prob: Probability of flipping each axis.
        rr_prob: Probability of a 90-degree rotation (Lightly's ``rr_prob`` with
            ``rr_degrees=None``); alias ``rotate90_prob``.
        contrast_prob: Probability of contrast change, per modality.
        contrast: Range of the contrast factor.
        scale_shift_prob: Probability of each of intensity scaling and shifting, per modality.
        scale_shift: Half-range of the relative scale and of the shift.
        gamma_prob: Probability of gamma correction, per modality.
        gaussian_blur: Probability of Gaussian blur, per modality; alias ``blur_prob``.
        sigmas: Range of the blur sigma in voxels; alias ``blur_sigma``.
        noise_prob: Probability of Gaussian noise, per modality.
        noise_std: Range of the noise standard deviation.
        modality_dropout: Probability of dropping a random subset of the modalities.
        seed: Seed of the transform's own generator.
        size, blur_prob, blur_sigma, rotate90_prob: The older names (keyword only).

    >>> import torch
    >>> item = {"subject_id": "s1", "images": {"t1": torch.randn(1, 12, 12, 12)},
    ...         "mask": torch.tensor([True, False]), "modality_names": ("t1", "t2"),
    ...         "label_map": None}
    >>> views = SimCLRTransform3D(input_size=8)(item, generator=0)
    >>> len(views), tuple(views[0]["image"].shape), views[1]["mask"].tolist()
    (2, (2, 8, 8, 8), [True, False])
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 96,
        min_scale: float = 0.2,
        flip_prob: float = 0.2,
        rr_prob: float = 0.2,
        contrast_prob: float = 0.8,
        contrast: tuple[float, float] = (0.75, 1.25),
        scale_shift_prob: float = 0.5,
        scale_shift: float = 0.1,
        gamma_prob: float = 0.3,
        gaussian_blur: float = 0.5,
        sigmas: tuple[float, float] = (0.5, 1.0),
        noise_prob: float = 0.2,
        noise_std: tuple[float, float] = (0.0, 0.1),
        modality_dropout: float = 0.0,
        seed: int | None = None,
        *,
        size: int | Sequence[int] | None = None,
        blur_prob: float | None = None,
        blur_sigma: tuple[float, float] | None = None,
        rotate90_prob: float | None = None,
    ) -> None:
        owner = type(self).__name__
        size = lightly_name(owner, "input_size", input_size, 96, size)
        rotate90_prob = lightly_name(owner, "rr_prob", rr_prob, 0.2, rotate90_prob)
        blur_prob = lightly_name(owner, "gaussian_blur", gaussian_blur, 0.5, blur_prob)
        blur_sigma = lightly_name(owner, "sigmas", sigmas, (0.5, 1.0), blur_sigma)
        view = SimCLRViewTransform3D(
            input_size=size,
            min_scale=min_scale,
            flip_prob=flip_prob,
            rr_prob=rotate90_prob,
            contrast_prob=contrast_prob,
            contrast=contrast,
            scale_shift_prob=scale_shift_prob,
            scale_shift=scale_shift,
            gamma_prob=gamma_prob,
            gaussian_blur=blur_prob,
            sigmas=blur_sigma,
            noise_prob=noise_prob,
            noise_std=noise_std,
            modality_dropout=modality_dropout,
            seed=seed,
        )
        super().__init__([view, view])
