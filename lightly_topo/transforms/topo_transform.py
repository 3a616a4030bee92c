"""TACO views: the modalities of one subject as co-registered views."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from lightly_topo.data.types import VolumeItem
from lightly_topo.transforms.crop import RandomCrop3D
from lightly_topo.transforms.errors import NotEnoughModalitiesError
from lightly_topo.transforms.flip import RandomFlip3D
from lightly_topo.transforms.intensity import RandomScaleShift3D
from lightly_topo.transforms.lightly_names import lightly_name
from lightly_topo.transforms.pipeline import Augment3D
from lightly_topo.transforms.random import GeneratorLike, RandomState, resolve_generator
from lightly_topo.transforms.rotate90 import rotate90
from lightly_topo.transforms.view import View, item_channels


class TopoTransform3D:
    """Co-registered single-modality views of one subject for TACO [0].

    Input: a :class:`~lightly_topo.data.VolumeItem`. Output: a list of
    ``num_modalities * num_spatial_views`` :class:`~lightly_topo.transforms.View` dicts,
    ordered by spatial view, then modality: ``views[s * num_modalities + j]`` holds modality
    ``j`` of the draw under spatial view ``s``.

    ``num_modalities`` distinct available modalities are drawn at random (in random order).
    Each spatial view draws one spatial transform, shared by its modality views (so they
    have the same ``grid`` and are voxel-wise co-registered) and by the label map, and one
    intensity draw per modality view. Each view's ``image`` is ``(M, d, h, w)`` over the
    dataset's vocabulary with only its modality non-zero, and its ``mask`` is one-hot. With
    ``num_spatial_views = 2`` a second, independently drawn spatial view follows (relate
    its tokens to the first view's with :func:`~lightly_topo.transforms.matched_tokens`).

    Defaults follow the 3D medical SSL recipe used for TACO (Swin UNETR / MONAI [1]):
    random crop to ``size = 96`` (zero padding where the volume is smaller), per-axis flips
    and a 90-degree rotation each with ``p = 0.2``, and per modality intensity scaling and
    shifting by ``+-0.1``, each with ``p = 0.1``.

    A subject with fewer available modalities than ``num_modalities``: with
    ``on_too_few="repeat"`` (default) all its modalities are used and then repeated (a
    repeated modality still gets its own intensity draw); with ``"error"`` a
    :class:`~lightly_topo.transforms.NotEnoughModalitiesError` is raised.

    - [0]: Beyond Instance-Level Self-Supervision in 3D Multi-Modal Medical Imaging (TACO), ICML 2026
    - [1]: Swin UNETR self-supervised pretraining, 2022, https://arxiv.org/abs/2111.14791

    Args:
        input_size: Output size ``(d, h, w)`` (an int for a cube); alias ``size``.
        num_modalities: Modality views per spatial view (at least 1).
        num_spatial_views: 1, or 2 for a second spatial draw.
        flip_prob: Probability of flipping each axis.
        rr_prob: Probability of a 90-degree rotation (in square planes of ``input_size``);
            alias ``rotate90_prob``.
        scale_shift: Half-range of the relative intensity scale and of the shift.
        scale_shift_prob: Probability of each of scaling and shifting, per modality.
        second_view: Pipeline of the second spatial view (default: the same recipe).
        on_too_few: ``"repeat"`` or ``"error"``, see above.
        seed: Seed of the transform's own generator.
        size, rotate90_prob: The older names (keyword only).

    >>> item = {"subject_id": "s1", "modality_names": ("t1", "t2", "flair"),
    ...         "images": {"t1": torch.randn(1, 12, 12, 12), "flair": torch.randn(1, 12, 12, 12)},
    ...         "mask": torch.tensor([True, False, True]), "label_map": None}
    >>> views = TopoTransform3D(input_size=8)(item, generator=0)
    >>> sorted(v["mask"].nonzero().item() for v in views)
    [0, 2]
    >>> bool(torch.equal(views[0]["grid"], views[1]["grid"]))
    True
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 96,
        num_modalities: int = 2,
        num_spatial_views: int = 1,
        flip_prob: float = 0.2,
        rr_prob: float = 0.2,
        scale_shift: float = 0.1,
        scale_shift_prob: float = 0.1,
        second_view: Augment3D | None = None,
        on_too_few: Literal["repeat", "error"] = "repeat",
        seed: int | None = None,
        *,
        size: int | Sequence[int] | None = None,
        rotate90_prob: float | None = None,
    ) -> None:
        owner = type(self).__name__
        size = lightly_name(owner, "input_size", input_size, 96, size)
        rotate90_prob = lightly_name(owner, "rr_prob", rr_prob, 0.2, rotate90_prob)
        if num_modalities < 1:
            raise ValueError(f"num_modalities must be at least 1, got {num_modalities}")
        if num_spatial_views not in (1, 2):
            raise ValueError(f"num_spatial_views must be 1 or 2, got {num_spatial_views}")
        if on_too_few not in ("repeat", "error"):
            raise ValueError(f"on_too_few must be 'repeat' or 'error', got {on_too_few!r}")

        def recipe() -> Augment3D:
            return Augment3D(
                spatial=[
                    RandomCrop3D(size),
                    RandomFlip3D(p=flip_prob),
                    *rotate90(size, rotate90_prob),
                ],
                intensity=[RandomScaleShift3D(scale_shift, scale_shift, p=scale_shift_prob)],
            )

        self.pipelines = [recipe()]
        if num_spatial_views == 2:
            self.pipelines.append(second_view or recipe())
        self.num_modalities = int(num_modalities)
        self.on_too_few = on_too_few
        self.random_state = RandomState(seed)

    def _choose(
        self, mask: torch.Tensor, subject: str, names: tuple[str, ...], gen: torch.Generator
    ) -> list[int]:
        available = torch.nonzero(mask).flatten()
        n, k = available.numel(), self.num_modalities
        order = available[torch.randperm(n, generator=gen)].tolist()
        if n >= k:
            return order[:k]
        if self.on_too_few == "error":
            have = [names[i] for i in available.tolist()]
            raise NotEnoughModalitiesError(
                f"subject {subject!r} has {n} available modalities {have}; TopoTransform3D(num_modalities={k}) "
                "needs that many distinct ones. Use on_too_few='repeat' or a smaller num_modalities."
            )
        extra = available[torch.randint(0, n, (k - n,), generator=gen)].tolist()
        return order + extra

    def __call__(self, item: VolumeItem, generator: GeneratorLike = None) -> list[View]:
        gen = resolve_generator(generator, self.random_state)
        channels, mask = item_channels(item)
        names = tuple(item["modality_names"])
        subject = str(item["subject_id"])
        chosen = self._choose(mask, subject, names, gen)
        picked = [channels[i] for i in chosen]
        shape = picked[0].shape[1:]  # type: ignore[union-attr]
        all_on = torch.ones(len(picked), dtype=torch.bool)
        views: list[View] = []
        for pipeline in self.pipelines:
            params = pipeline.sample_params(shape, all_on, gen)
            result = pipeline.apply_channels(
                picked, all_on, params, item.get("label_map"), with_foreground=True
            )
            foreground = result.foreground
            assert foreground is not None  # with_foreground=True sets it
            for j, modality in enumerate(chosen):
                image = result.image.new_zeros((len(names), *result.image.shape[1:]))
                image[modality] = result.image[j]
                one_hot = torch.zeros(len(names), dtype=torch.bool)
                one_hot[modality] = True
                views.append(
                    View(
                        image=image,
                        mask=one_hot,
                        grid=result.grid,
                        label_map=result.label_map,
                        foreground=foreground,
                        subject_id=subject,
                        modality_names=names,
                    )
                )
        return views
