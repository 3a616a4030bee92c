"""Per-item random number generators: item ``i`` depends only on ``(seed, i)``."""

from __future__ import annotations

import numpy as np
import torch


def item_generators(
    seed: int, index: int, stream: int = 0
) -> tuple[np.random.Generator, torch.Generator]:
    """Independent NumPy and torch generators for one synthetic subject.

    The streams depend only on ``(seed, index, stream)``, never on the global random state
    or on the order in which items are drawn. Separate streams (anatomy, lesions, one per
    modality) keep each part of a subject independent of the others being requested.

    Args:
        seed: The dataset seed (non-negative).
        index: The item index (non-negative).
        stream: Which part of the subject the generators are for (non-negative).

    Returns:
        ``(numpy_generator, torch_generator)``; torch's is a CPU generator.

    >>> a, _ = item_generators(0, 3)
    >>> b, _ = item_generators(0, 3)
    >>> float(a.random()) == float(b.random())
    True
    """
    sequence = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index), int(stream)))
    numpy_state, torch_state = sequence.generate_state(2, dtype=np.uint64)
    torch_generator = torch.Generator().manual_seed(int(torch_state) & ((1 << 63) - 1))
    return np.random.default_rng(int(numpy_state)), torch_generator
