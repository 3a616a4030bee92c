"""The MAE view for 3D multimodal volumes."""

from __future__ import annotations

from collections.abc import Sequence

from lightly_topo.transforms.crop import RandomResizedCrop3D
from lightly_topo.transforms.flip import RandomFlip3D
from lightly_topo.transforms.lightly_names import lightly_name
from lightly_topo.transforms.multi_view_transform import MultiViewTransform3D
from lightly_topo.transforms.pipeline import Augment3D
from lightly_topo.transforms.view import ViewTransform3D


class MAETransform3D(MultiViewTransform3D):
    """One view per subject for masked autoencoding (MAE [0]) on 3D MRI.

    Input: a :class:`~lightly_topo.data.VolumeItem`. Output: a list with one
    :class:`~lightly_topo.transforms.View`.

    As Lightly's ``MAETransform``, only spatial augmentation: a random resized crop to
    ``size`` (scale ``(min_scale, 1)``, ``min_scale = 0.2`` as MAE; ``size = 96`` as in 3D
    medical SSL [1]) and per-axis flips with ``p = 0.2`` [1]. No intensity change, so the
    reconstruction target is the (resampled) image itself.

    - [0]: Masked Autoencoders Are Scalable Vision Learners, 2021, https://arxiv.org/abs/2111.06377
    - [1]: Swin UNETR self-supervised pretraining, 2022, https://arxiv.org/abs/2111.14791

    Args:
        input_size: Output size ``(d, h, w)`` (an int for a cube); alias ``size``.
        min_scale: Smallest crop volume as a fraction of the input volume.
        flip_prob: Probability of flipping each axis.
        seed: Seed of the transform's own generator.
        size: The older name of ``input_size`` (keyword only).

    >>> import torch
    >>> item = {"subject_id": "s1", "images": {"t1": torch.randn(1, 12, 12, 12)},
    ...         "mask": torch.tensor([True]), "modality_names": ("t1",), "label_map": None}
    >>> views = MAETransform3D(input_size=8)(item, generator=0)
    >>> len(views), tuple(views[0]["grid"].shape)
    (1, (3, 8, 8, 8))
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 96,
        min_scale: float = 0.2,
        flip_prob: float = 0.2,
        seed: int | None = None,
        *,
        size: int | Sequence[int] | None = None,
    ) -> None:
        size = lightly_name(type(self).__name__, "input_size", input_size, 96, size)
        pipeline = Augment3D(
            spatial=[RandomResizedCrop3D(size, scale=(min_scale, 1.0)), RandomFlip3D(p=flip_prob)]
        )
        super().__init__([ViewTransform3D(pipeline, seed)])
