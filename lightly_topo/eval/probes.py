"""Linear and kNN probes on frozen features (scikit-learn estimators, deterministic).

* :func:`fit_dense_probe`: a voxel-wise linear classifier (linear discriminant analysis with
  Ledoit-Wolf shrinkage, scikit-learn's ``LinearDiscriminantAnalysis(solver="lsqr")``), for
  segmentation and parcellation. LDA is closed-form: about a hundred times faster than an
  iterative logistic fit on 10^5 voxels, and without a convergence tolerance that could
  turn a last-bit change of the features into another solution. Its class priors are the
  classes' voxel frequencies in the training subjects, so a class-balanced voxel sample
  does not bias the argmax towards small structures.
* :func:`fit_subject_probes`: a logistic-regression linear probe and a kNN probe on pooled
  subject features (standardised), for subject labels.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(0, 1, (50, 3)), rng.normal(3, 1, (50, 3))])
>>> y = np.repeat([0, 1], 50)
>>> probe = fit_dense_probe(x, y, num_classes=3)
>>> probe.weight.shape, int(probe.logits(torch.tensor([[3.0, 3.0, 3.0]])).argmax())
(torch.Size([3, 3]), 1)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: Logit of a class that no training voxel has: never predicted.
ABSENT_LOGIT = -1e4


@dataclass
class DenseProbe:
    """A linear voxel classifier: ``logits = x @ weight.T + bias``.

    Attributes:
        weight: float32 ``(K, C)``, ``K`` the number of classes (rows of classes absent
            from the training voxels are zero, their bias :data:`ABSENT_LOGIT`).
        bias: float32 ``(K,)``.
    """

    weight: Tensor
    bias: Tensor

    def logits(self, x: Tensor) -> Tensor:
        """Logits ``(N, K)`` of features ``(N, C)``."""
        return x.float() @ self.weight.T + self.bias


def _limits() -> Any:
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the same sums in the same order whatever the machine has.
    return threadpool_limits(limits=1)


def fit_dense_probe(
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    num_classes: int,
    class_voxels: np.ndarray | None = None,
) -> DenseProbe:
    """Fit the voxel-wise linear probe (shrinkage LDA).

    Args:
        x: Voxel features ``(N, C)``.
        y: Their class ids ``(N,)`` in ``[0, num_classes)``.
        num_classes: ``K``.
        class_voxels: Voxel count of each class over the training subjects ``(K,)``: the
            priors. ``None``: the frequencies in ``y``.

    Raises:
        ValueError: Fewer than two classes in ``y``, or shapes that do not match.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    features = np.asarray(x, dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64)
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(
            f"dense probe: x (N, C) and y (N,) expected, got {features.shape} and {labels.shape}"
        )
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(f"dense probe: the training voxels hold only class {present.tolist()}")
    counts = np.bincount(labels, minlength=num_classes) if class_voxels is None else class_voxels
    priors = np.asarray(counts, dtype=np.float64)[present]
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto", priors=priors / priors.sum())
    with _limits(), warnings.catch_warnings():
        # A class with a single training voxel makes scikit-learn warn about its one-sample
        # covariance; its weight in the pooled covariance is its (tiny) prior.
        warnings.filterwarnings("ignore", message="Only one sample available")
        lda.fit(features, labels)
    coef, intercept = lda.coef_, lda.intercept_
    if len(present) == 2:
        coef = np.stack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    weight = torch.zeros(num_classes, features.shape[1])
    bias = torch.full((num_classes,), ABSENT_LOGIT)
    weight[torch.from_numpy(present)] = torch.from_numpy(coef).float()
    bias[torch.from_numpy(present)] = torch.from_numpy(intercept).float()
    return DenseProbe(weight=weight, bias=bias)


def fit_subject_probes(x: np.ndarray, y: np.ndarray, neighbours: int = 5) -> dict[str, Any]:
    """Fit the linear (logistic regression) and kNN probes on pooled features.

    Args:
        x: Pooled features ``(N, P)`` of the training subjects.
        y: Their labels ``(N,)`` (any hashable values).
        neighbours: ``k`` of the kNN probe (at most ``N``).

    Returns:
        ``{"linear": estimator, "knn": estimator}``, each with ``predict``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(x, dtype=np.float64)
    with _limits():
        linear = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
        linear.fit(features, y)
        knn = make_pipeline(
            StandardScaler(), KNeighborsClassifier(n_neighbors=min(neighbours, len(y)))
        )
        knn.fit(features, y)
    return {"linear": linear, "knn": knn}


def predict(estimator: Any, x: np.ndarray) -> np.ndarray:
    """``estimator.predict`` under the probes' one-thread limit."""
    with _limits():
        return np.asarray(estimator.predict(np.asarray(x, dtype=np.float64)))
