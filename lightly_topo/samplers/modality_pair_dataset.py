"""A dataset wrapper that accepts the ``(index, (mod_a, mod_b))`` keys of the cross-subject sampler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch.utils.data import Dataset


class ModalityPairDataset(Dataset[dict[str, Any]]):
    """Wrap a dataset of dict items so it accepts keys ``(index, (mod_a, mod_b))``.

    :class:`~lightly_topo.samplers.CrossSubjectBatchSampler` yields such keys; a
    ``DataLoader`` passes them to the dataset one by one. This wrapper loads
    ``dataset[index]`` and returns a shallow copy of the item with ``"modality_pair"`` set to
    ``(mod_a, mod_b)``. A plain int key returns the item unchanged (no pair added), so the
    wrapper also works with ordinary samplers.

    Args:
        dataset: A map-style dataset whose items are mappings (e.g.
            :class:`~lightly_topo.data.VolumeItem`).
        key: Name of the item entry that receives the pair.

    Example:
        >>> items = [{"subject_id": "a"}, {"subject_id": "b"}]
        >>> ModalityPairDataset(items)[(1, ("t1", "t2"))]
        {'subject_id': 'b', 'modality_pair': ('t1', 't2')}
    """

    def __init__(self, dataset: Any, key: str = "modality_pair") -> None:
        self.dataset = dataset
        self.key = key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, tuple[str, str]]) -> dict[str, Any]:
        if isinstance(key, tuple):
            if len(key) != 2 or not isinstance(key[1], tuple) or len(key[1]) != 2:
                raise TypeError(
                    f"ModalityPairDataset key must be an int or (index, (mod_a, mod_b)), got {key!r}."
                )
            index, pair = key
        else:
            index, pair = key, None
        item = self.dataset[index]
        if not isinstance(item, Mapping):
            raise TypeError(
                f"ModalityPairDataset needs dataset items that are mappings (dicts), got "
                f"{type(item).__name__} for index {index}."
            )
        out = dict(item)
        if pair is not None:
            out[self.key] = (str(pair[0]), str(pair[1]))
        return out
