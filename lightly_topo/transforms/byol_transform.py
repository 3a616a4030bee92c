"""BYOL views for 3D multimodal volumes: two asymmetric pipelines."""

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


class _BYOLView(ViewTransform3D):
    def __init__(
        self,
        size: int | Sequence[int],
        min_scale: float,
        flip_prob: float,
        rotate90_prob: float,
        contrast_prob: float,
        scale_shift_prob: float,
        blur_prob: float,
        gamma_prob: float,
        noise_prob: float,
        modality_dropout: float,
        seed: int | None,
    ) -> None:
        pipeline = Augment3D(
            spatial=[
                RandomResizedCrop3D(size, scale=(min_scale, 1.0)),
                RandomFlip3D(p=flip_prob),
                *rotate90(size, rotate90_prob),
            ],
            intensity=[
                RandomContrast3D((0.6, 1.4), p=contrast_prob),
                RandomScaleShift3D(0.1, 0.1, p=scale_shift_prob),
                RandomGaussianBlur3D((0.5, 1.0), p=blur_prob),
                RandomGamma3D(0.3, p=gamma_prob),
                RandomGaussianNoise3D((0.0, 0.1), p=noise_prob),
            ],
            dropout=RandomModalityDropout(modality_dropout) if modality_dropout > 0 else None,
        )
        super().__init__(pipeline, seed)


class BYOLView1Transform3D(_BYOLView):
    """The first BYOL view (see :class:`BYOLTransform3D`): Gaussian blur always
    (``blur_prob = 1.0``, as BYOL's first view), no gamma."""

    def __init__(
        self,
        input_size: int | Sequence[int] = 96,
        min_scale: float = 0.2,
        flip_prob: float = 0.2,
        rr_prob: float = 0.2,
        contrast_prob: float = 0.8,
        scale_shift_prob: float = 0.5,
        gaussian_blur: float = 1.0,
        gamma_prob: float = 0.0,
        noise_prob: float = 0.2,
        modality_dropout: float = 0.0,
        seed: int | None = None,
        *,
        size: int | Sequence[int] | None = None,
        blur_prob: float | None = None,
        rotate90_prob: float | None = None,
    ) -> None:
        owner = type(self).__name__
        super().__init__(
            lightly_name(owner, "input_size", input_size, 96, size),
            min_scale,
            flip_prob,
            lightly_name(owner, "rr_prob", rr_prob, 0.2, rotate90_prob),
            contrast_prob,
            scale_shift_prob,
            lightly_name(owner, "gaussian_blur", gaussian_blur, 1.0, blur_prob),
            gamma_prob,
            noise_prob,
            modality_dropout,
            seed,
        )


class BYOLView2Transform3D(_BYOLView):
    """The second BYOL view (see :class:`BYOLTransform3D`): rare blur (``blur_prob = 0.1``)
    and gamma with ``p = 0.2`` in place of BYOL's solarisation."""

    def __init__(
        self,
        input_size: int | Sequence[int] = 96,
        min_scale: float = 0.2,
        flip_prob: float = 0.2,
        rr_prob: float = 0.2,
        contrast_prob: float = 0.8,
        scale_shift_prob: float = 0.5,
        gaussian_blur: float = 0.1,
        gamma_prob: float = 0.2,
        noise_prob: float = 0.2,
        modality_dropout: float = 0.0,
        seed: int | None = None,
        *,
        size: int | Sequence[int] | None = None,
        blur_prob: float | None = None,
        rotate90_prob: float | None = None,
    ) -> None:
        owner = type(self).__name__
        super().__init__(
            lightly_name(owner, "input_size", input_size, 96, size),
            min_scale,
            flip_prob,
            lightly_name(owner, "rr_prob", rr_prob, 0.2, rotate90_prob),
            contrast_prob,
            scale_shift_prob,
            lightly_name(owner, "gaussian_blur", gaussian_blur, 0.1, blur_prob),
            gamma_prob,
            noise_prob,
            modality_dropout,
            seed,
        )


class BYOLTransform3D(MultiViewTransform3D):
    """Two asymmetrically augmented views per subject for BYOL [0] on 3D MRI.

    Input: a :class:`~lightly_topo.data.VolumeItem`. Output: a list of two
    :class:`~lightly_topo.transforms.View` dicts.

    Both views: random resized crop to ``size`` (scale ``(0.2, 1)``; ``size = 96`` as in
    3D medical SSL [1]), per-axis flips and 90-degree rotations with ``p = 0.2`` [1], then
    per modality contrast in ``(0.6, 1.4)`` with ``p = 0.8`` (BYOL's colour-jitter
    probability), scale and shift by ``+-0.1`` with ``p = 0.5`` and Gaussian noise
    (std up to 0.1) with ``p = 0.2``. The asymmetry follows BYOL: view 1 is always blurred
    (sigma 0.5 to 1 voxel); view 2 is blurred with ``p = 0.1`` and gets a gamma change
    (``|log gamma| <= 0.3``) with ``p = 0.2`` in place of solarisation, which has no
    meaning for MRI intensities.

    - [0]: Bootstrap Your Own Latent, 2020, https://arxiv.org/abs/2006.07733
    - [1]: Swin UNETR self-supervised pretraining, 2022, https://arxiv.org/abs/2111.14791

    Args:
        view_1_transform: The first view (default :class:`BYOLView1Transform3D`).
        view_2_transform: The second view (default :class:`BYOLView2Transform3D`).
        input_size: Output size, used for the default views; alias ``size``.
        seed: Seed of the default views' generators (view 2 uses ``seed + 1``).
        size: The older name of ``input_size`` (keyword only).

    >>> import torch
    >>> item = {"subject_id": "s1", "images": {"t1": torch.randn(1, 12, 12, 12)},
    ...         "mask": torch.tensor([True]), "modality_names": ("t1",), "label_map": None}
    >>> views = BYOLTransform3D(input_size=8)(item, generator=0)
    >>> [tuple(v["image"].shape) for v in views]
    [(1, 8, 8, 8), (1, 8, 8, 8)]
    """

    def __init__(
        self,
        view_1_transform: ViewTransform3D | None = None,
        view_2_transform: ViewTransform3D | None = None,
        input_size: int | Sequence[int] = 96,
        seed: int | None = None,
        *,
        size: int | Sequence[int] | None = None,
    ) -> None:
        input_size = lightly_name(type(self).__name__, "input_size", input_size, 96, size)
        view_1 = view_1_transform or BYOLView1Transform3D(input_size=input_size, seed=seed)
        view_2 = view_2_transform or BYOLView2Transform3D(
            input_size=input_size, seed=None if seed is None else seed + 1
        )
        super().__init__([view_1, view_2])
