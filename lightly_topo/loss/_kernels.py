"""A fused CPU kernel for the neighbour searches of the TACO losses (numba).

Private module. With PyTorch ops, ranking the rows of a Gram matrix takes several passes
over it (a score transform, the exclusion of the anchor, chunk extrema, two ``topk``
calls); :func:`top_k_rows` does it in one pass per row, on as many threads as PyTorch uses.
It runs when numba is installed (``pip install "lightly-topo[fast]"``) and the tensors are
float32 or float64 on a CPU; otherwise the PyTorch path runs. Both give the same
neighbours, up to the order among exactly equal scores.

Set the environment variable ``LIGHTLY_TOPO_KERNELS=0`` to use the PyTorch path only.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import threading
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: Whether numba is installed (imported only when a kernel first runs).
AVAILABLE = importlib.util.find_spec("numba") is not None

#: Whether the kernels may be used (numba installed and not disabled).
ENABLED = AVAILABLE and os.environ.get("LIGHTLY_TOPO_KERNELS", "1") != "0"

#: Rows shorter than this are ranked with PyTorch ops (little to gain, and no numba import
#: for small maps).
MIN_LENGTH = 128

_DTYPES = (torch.float32, torch.float64)


def usable(*tensors: Tensor) -> bool:
    """Whether the kernels run for these tensors: enabled, on CPU, float32 or float64.

    Loads the kernels on first use; if numba fails to import (e.g. a NumPy release newer than
    the installed numba supports), warns once and leaves the PyTorch path in use.
    """
    if not (ENABLED and all(t.device.type == "cpu" and t.dtype in _DTYPES for t in tensors)):
        return False
    return _load() is not None


_MODULE: Any = None
_FAILED = False


def _load() -> Any:
    """The kernel module, imported once; ``None`` where numba cannot be imported."""
    global _MODULE, _FAILED
    if _MODULE is None and not _FAILED:
        try:
            from lightly_topo.loss import _kernels_numba
        except Exception as err:  # numba raises ImportError, or others on a broken install
            _FAILED = True
            warnings.warn(
                f"lightly-topo: numba is installed but its kernels cannot be loaded ({err}); "
                "the losses use the PyTorch path (set LIGHTLY_TOPO_KERNELS=0 to silence this)",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            _MODULE = _kernels_numba
    return _MODULE


def version() -> str | None:
    """numba's version where installed, else ``None`` (imports numba)."""
    if not AVAILABLE:
        return None
    import numba

    return str(numba.__version__)


#: Least number of scores per thread worth starting a thread for.
THREAD_MIN_ELEMENTS = 1 << 18


def _run(
    kernel: Any, total: int, per_item: int, before: tuple[Any, ...], after: tuple[Any, ...]
) -> None:
    """Runs ``kernel(*before, start, stop, *after)`` over ``range(total)`` split across threads.

    The kernels release the GIL, so plain Python threads run them in parallel; unlike
    numba's parallel layers (OpenMP), they survive a ``fork`` (DataLoader workers, fork-based
    DDP) and concurrent calls.
    """
    threads = max(1, min(torch.get_num_threads(), total * per_item // THREAD_MIN_ELEMENTS))
    bounds = [total * t // threads for t in range(threads + 1)]
    workers = [
        threading.Thread(target=kernel, args=(*before, lo, hi, *after))
        for lo, hi in itertools.pairwise(bounds[1:])
    ]
    for worker in workers:
        worker.start()
    kernel(*before, bounds[0], bounds[1], *after)
    for worker in workers:
        worker.join()


def _array(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


def top_k_rows(
    gram: Tensor,
    rows: Tensor,
    exclude: Tensor,
    group: Tensor,
    bias: Tensor,
    scale: Tensor,
    k: int,
) -> tuple[Tensor, Tensor]:
    """The ``k`` largest scores ``gram[rows[r], j] * scale[g, j] + bias[g, j]`` of each row.

    Args:
        gram: Matrix (M, N), the rows to rank.
        rows: Row of ``gram`` to rank for each output row (R,).
        exclude: Column left out of each output row (R,), or ``-1``.
        group: Row of ``bias`` and ``scale`` for each output row (R,).
        bias: Additive term (G, N); ``-inf`` leaves a column out.
        scale: Multiplicative term (G, N).
        k: Number of columns, ``k <= N``.

    Returns:
        ``(index, found)`` (R, k): the best columns, best first, and whether each is a
        finite score (False in the tail where fewer than ``k`` exist; the index is then
        ``exclude`` or 0).
    """
    total = rows.shape[0]
    idx = np.empty((total, k), np.int64)
    val = np.empty((total, k), _array(gram).dtype)
    arrays = (
        _array(gram),
        _array(rows.long()),
        _array(exclude.long()),
        _array(group.long()),
        _array(bias.to(gram.dtype)),
        _array(scale.to(gram.dtype)),
        k,
    )
    module = _load()
    if module is None:
        raise RuntimeError("the numba kernels are not available (check usable() first)")
    _run(module.top_rows, total, gram.shape[1], arrays, (idx, val))
    return torch.from_numpy(idx), torch.from_numpy(val) > float("-inf")
