"""Lightly's ``MultiViewTransform`` for 3D items: one view per view transform."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lightly.transforms.multi_view_transform import MultiViewTransform

from lightly_topo.data.types import VolumeItem
from lightly_topo.transforms.random import GeneratorLike, as_generator
from lightly_topo.transforms.view import View


class MultiViewTransform3D(MultiViewTransform):
    """Transform a :class:`~lightly_topo.data.VolumeItem` into a list of :class:`View`.

    A :class:`lightly.transforms.multi_view_transform.MultiViewTransform` whose transforms
    map an item to a view (e.g. :class:`~lightly_topo.transforms.view.ViewTransform3D`). Batch the views with
    :func:`~lightly_topo.transforms.collate_views`.

    Args:
        transforms: One transform per view; each takes ``(item, generator=...)``.
    """

    def __init__(self, transforms: Sequence[Callable[..., View]]) -> None:
        super().__init__(transforms=transforms)

    def __call__(self, item: VolumeItem, generator: GeneratorLike = None) -> list[View]:  # type: ignore[override]
        """Every view transform applied to ``item``; ``generator`` (if given) is shared, so
        the views are independent draws in order."""
        gen = as_generator(generator)
        return [transform(item, generator=gen) for transform in self.transforms]
