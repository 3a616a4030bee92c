"""Segmentation and classification metrics.

Segmentation metrics take integer label volumes (Dice) or binary masks (HD95) as torch
tensors (NumPy arrays are accepted too). Classification metrics take predictions, labels and
scores as tensors, arrays or sequences. Nothing here imports scikit-learn; ``scipy`` is
needed only by :func:`hd95`.

Conventions:

* **Dice of an absent class.** A class present in neither prediction nor target has an
  undefined Dice (0/0), reported as ``NaN`` and excluded from :func:`mean_dice`. A class
  present in only one of them has Dice 0.
* **Dice as the field reports it** (:func:`presence_dice`, the benchmark's convention). A
  class's Dice is averaged over the subjects whose target contains it; on a subject
  without it, the predicted volume of the class is a false-positive volume, reported in its
  own column. No 0 or NaN mixes the two.
* **HD95 of empty masks.** Both masks empty: ``NaN`` (nothing to measure). Exactly one
  empty: ``inf`` (the surfaces are infinitely far apart).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

ArrayLike = Tensor | np.ndarray | Sequence[float] | Sequence[int]


def _as_label_tensor(x: Tensor | np.ndarray, name: str) -> Tensor:
    t = torch.as_tensor(x)
    if t.is_floating_point() or t.is_complex():
        if not torch.equal(t, t.round()):
            raise ValueError(f"{name} must hold integer labels, got non-integer values.")
    return t.long()


def dice_per_class(
    pred: Tensor | np.ndarray,
    target: Tensor | np.ndarray,
    num_classes: int,
    ignore_background: bool = True,
) -> Tensor:
    """Dice coefficient per class, ``2 |P ∩ T| / (|P| + |T|)``, on integer label volumes.

    Args:
        pred: Predicted labels, ``(D, H, W)`` (one volume), ``(B, D, H, W)`` or
            ``(B, 1, D, H, W)``, values in ``[0, num_classes)``.
        target: Reference labels, same shape as ``pred``.
        num_classes: Number of classes including background (label 0).
        ignore_background: Leave out class 0.

    Returns:
        float64 tensor ``(K,)`` for one volume or ``(B, K)`` for a batch, with
        ``K = num_classes - 1`` if ``ignore_background`` else ``num_classes``; column ``k``
        is class ``k + 1`` (or ``k``). ``NaN`` where the class is absent from both.

    Raises:
        ValueError: Shape mismatch, bad rank, ``num_classes < 2``, labels outside
            ``[0, num_classes)`` or non-integer values.

    Example:
        >>> pred = torch.tensor([[[0, 1], [1, 2]]])
        >>> target = torch.tensor([[[0, 1], [2, 2]]])
        >>> dice_per_class(pred, target, num_classes=4)
        tensor([0.6667, 0.6667,    nan], dtype=torch.float64)
    """
    if num_classes < 2:
        raise ValueError(
            f"num_classes must be at least 2 (background + one class), got {num_classes}."
        )
    p = _as_label_tensor(pred, "pred")
    t = _as_label_tensor(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}."
        )
    single = p.ndim == 3
    if p.ndim == 5:
        if p.shape[1] != 1:
            raise ValueError(f"5-dimensional labels must be (B, 1, D, H, W), got {tuple(p.shape)}.")
        p, t = p[:, 0], t[:, 0]
    elif single:
        p, t = p[None], t[None]
    elif p.ndim != 4:
        raise ValueError(
            f"labels must be (D, H, W), (B, D, H, W) or (B, 1, D, H, W), got {tuple(p.shape)}."
        )
    for x, name in ((p, "pred"), (t, "target")):
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= num_classes):
            raise ValueError(
                f"{name} has labels outside [0, num_classes={num_classes}): "
                f"min {int(x.min())}, max {int(x.max())}."
            )
    b = p.shape[0]
    p, t = p.reshape(b, -1), t.reshape(b, -1)
    # Confusion counts per volume with one bincount: (B, num_classes, num_classes).
    flat = (torch.arange(b, device=p.device)[:, None] * num_classes + p) * num_classes + t
    confusion = torch.bincount(flat.reshape(-1), minlength=b * num_classes**2)
    confusion = confusion.reshape(b, num_classes, num_classes).double()
    inter = confusion.diagonal(dim1=1, dim2=2)
    total = confusion.sum(dim=2) + confusion.sum(dim=1)
    dice = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.nan)
    if ignore_background:
        dice = dice[:, 1:]
    return dice[0] if single else dice


def mean_dice(
    pred: Tensor | np.ndarray,
    target: Tensor | np.ndarray,
    num_classes: int,
    ignore_background: bool = True,
) -> float:
    """Mean Dice: per volume the mean over its defined classes, then the mean over volumes.

    Classes absent from both prediction and target (``NaN`` in :func:`dice_per_class`) are
    left out, like MONAI's ``DiceMetric(reduction="mean")``; a volume without any defined
    class is left out; ``NaN`` when nothing is defined.

    Args:
        pred: Predicted labels, see :func:`dice_per_class`.
        target: Reference labels.
        num_classes: Number of classes including background.
        ignore_background: Leave out class 0.

    Example:
        >>> mean_dice(torch.tensor([[[0, 1], [1, 2]]]), torch.tensor([[[0, 1], [2, 2]]]), 3)
        0.6666666666666666
    """
    dice = dice_per_class(pred, target, num_classes, ignore_background)
    if dice.ndim == 1:
        dice = dice[None]
    per_volume = dice.nanmean(dim=1)
    if bool(per_volume.isnan().all()):
        return float("nan")
    return float(per_volume.nanmean())


def hd95(
    pred_mask: Tensor | np.ndarray,
    target_mask: Tensor | np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> float:
    """95th-percentile symmetric Hausdorff distance between two binary masks.

    The surface of a mask is its voxels with a background face neighbour (the mask minus
    its erosion by the 6-neighbourhood; the volume border counts as background). For every
    surface voxel of one mask, the Euclidean distance (in the units of ``spacing``) to the
    nearest surface voxel of the other is taken from a distance transform; the result is
    the larger of the two directed 95th percentiles (linear interpolation), as in MONAI's
    ``compute_hausdorff_distance(percentile=95)``.

    Args:
        pred_mask: Binary mask ``(D, H, W)`` (bool or 0/1).
        target_mask: Binary mask, same shape.
        spacing: Voxel size along ``D, H, W``, e.g. in mm.

    Returns:
        The distance; ``NaN`` when both masks are empty, ``inf`` when exactly one is.

    Raises:
        ValueError: Shape mismatch, masks that are not 3D, or a ``spacing`` that is not
            three positive numbers.
        ImportError: ``scipy`` is not installed.

    Example:
        >>> a = torch.zeros(8, 8, 8, dtype=torch.bool)
        >>> a[2:5, 2:5, 2:5] = True
        >>> hd95(a, a.roll(2, dims=0))
        2.0
    """
    try:
        from scipy import ndimage
    except ImportError as error:  # pragma: no cover - scipy is installed with the test extras
        raise ImportError("hd95 needs scipy: pip install scipy") from error
    p = _as_mask(pred_mask, "pred_mask")
    t = _as_mask(target_mask, "target_mask")
    if p.shape != t.shape or p.ndim != 3:
        raise ValueError(
            f"pred_mask and target_mask must be 3D masks (D, H, W) of one shape, got "
            f"{p.shape} and {t.shape}."
        )
    sampling = tuple(float(s) for s in spacing)
    if len(sampling) != 3 or not all(s > 0 for s in sampling):
        raise ValueError(f"spacing must be three positive numbers (D, H, W), got {spacing!r}.")
    p_any, t_any = bool(p.any()), bool(t.any())
    if not p_any and not t_any:
        return float("nan")
    if not p_any or not t_any:
        return float("inf")
    p_edge = p ^ ndimage.binary_erosion(p)
    t_edge = t ^ ndimage.binary_erosion(t)
    to_t = ndimage.distance_transform_edt(~t_edge, sampling=sampling)[p_edge]
    to_p = ndimage.distance_transform_edt(~p_edge, sampling=sampling)[t_edge]
    return float(max(np.percentile(to_t, 95), np.percentile(to_p, 95)))


def presence_dice(
    pred: Tensor, target: Tensor, num_classes: int, voxel_ml: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Per-class Dice where the target has the class, false-positive volume where it has not.

    One confusion count gives both (a bincount of ``target * K + pred``), so a subject
    costs one pass over its voxels whatever the number of classes.

    Args:
        pred: Integer predicted labels, any shape.
        target: Integer target labels, the shape of ``pred``.
        num_classes: ``K``; labels lie in ``[0, K)``.
        voxel_ml: Volume of one voxel in millilitres.

    Returns:
        ``(dice, false_positive_ml)``, float64 ``(K,)`` each: ``dice[c]`` is NaN where the
        target has no voxel of ``c``; ``false_positive_ml[c]`` (the predicted volume of
        ``c``) is NaN where it has.

    >>> dice, fp = presence_dice(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 0, 0]), 3)
    >>> [round(float(v), 3) for v in dice], fp.tolist()
    ([0.5, 0.667, nan], [nan, nan, 1.0])
    """
    p = _as_label_tensor(pred, "pred").flatten()
    t = _as_label_tensor(target, "target").flatten()
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    confusion = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes).double()
    hits = confusion.diagonal()
    in_target, in_pred = confusion.sum(1), confusion.sum(0)
    present = in_target > 0
    nan = torch.full_like(hits, float("nan"))
    dice = torch.where(present, 2 * hits / (in_target + in_pred).clamp_min(1), nan)
    false_positive = torch.where(present, nan, in_pred * voxel_ml)
    return dice, false_positive


def _as_mask(x: Tensor | np.ndarray, name: str) -> np.ndarray:
    array = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if array.dtype != np.bool_:
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} must be a binary mask (bool or 0/1 values).")
        array = array.astype(bool)
    return array


def _as_1d(x: ArrayLike, name: str) -> np.ndarray:
    array = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (N,), got shape {array.shape}.")
    if array.size == 0:
        raise ValueError(f"{name} is empty.")
    return array


def _label_pair(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``pred`` and ``target`` as 1-D arrays of one length."""
    p, t = _as_1d(pred, "pred"), _as_1d(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same length, got {len(p)} and {len(t)}.")
    return p, t


def accuracy(pred: ArrayLike, target: ArrayLike) -> float:
    """Fraction of predictions equal to the target.

    Args:
        pred: Predicted class labels ``(N,)``.
        target: True class labels ``(N,)``.

    Example:
        >>> accuracy([0, 1, 1, 2], [0, 1, 2, 2])
        0.75
    """
    p, t = _label_pair(pred, target)
    return float((p == t).mean())


def balanced_accuracy(pred: ArrayLike, target: ArrayLike) -> float:
    """Mean recall over the classes present in ``target``.

    Classes that only occur in ``pred`` have no recall and are left out (as in
    scikit-learn's ``balanced_accuracy_score``).

    Example:
        >>> balanced_accuracy([0, 0, 0, 1], [0, 0, 1, 1])
        0.75
    """
    p, t = _label_pair(pred, target)
    recalls = [float((p[t == c] == c).mean()) for c in np.unique(t)]
    return float(np.mean(recalls))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties receiving the mean of the ranks they span."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]


def _binary_auroc(scores: np.ndarray, positive: np.ndarray, what: str) -> float:
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"auroc needs both positive and negative samples {what}, got {n_pos} positive and "
            f"{n_neg} negative."
        )
    ranks = _average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auroc(scores: ArrayLike | Tensor, labels: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U statistic, ties counted one half).

    Binary: ``scores`` ``(N,)`` (higher means class 1) with labels in ``{0, 1}``.
    Multi-class: ``scores`` ``(N, K)`` (e.g. probabilities) with labels in ``[0, K)``; the
    result is the unweighted mean over classes of the one-vs-rest AUROC (macro average), as
    scikit-learn's ``roc_auc_score(multi_class="ovr", average="macro")``.

    Raises:
        ValueError: Length or shape mismatch, labels out of range, or a class (binary: either
            class) with no sample or with every sample.

    Example:
        >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    s = scores.detach().cpu().numpy() if isinstance(scores, Tensor) else np.asarray(scores)
    y = _as_1d(labels, "labels")
    if s.shape[:1] != y.shape:
        raise ValueError(
            f"scores and labels must have the same length N, got shapes {s.shape} and {y.shape}."
        )
    s = s.astype(np.float64)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN.")
    if s.ndim == 1:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("binary auroc needs labels in {0, 1} (scores of shape (N,)).")
        return _binary_auroc(s, y == 1, "")
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must be (N,) or (N, K) with K >= 2, got shape {s.shape}.")
    k = s.shape[1]
    if not np.isin(y, np.arange(k)).all():
        raise ValueError(f"labels must be integers in [0, K={k}) for scores of shape {s.shape}.")
    return float(np.mean([_binary_auroc(s[:, c], y == c, f"for class {c}") for c in range(k)]))
