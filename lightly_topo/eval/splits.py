"""Subject-level data splits for downstream evaluation.

Splits are made over *subjects*, never over scans: every scan (session) of a subject lands
on the same side. ``groups`` goes one step further and keeps whole groups of subjects
together (for example the same patient under two identifiers in two datasets). Where a
categorical label is given, splits are stratified by it. Everything is deterministic given
``seed`` and independent of the order of the inputs.

Splits are plain :class:`SubjectSplit` records that round-trip through JSON.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightly_topo.data.types import LabelValue

Labels = Mapping[str, LabelValue] | Sequence[LabelValue]
Groups = Mapping[str, Hashable] | Sequence[Hashable]


@dataclass(frozen=True)
class SubjectSplit:
    """A train/test partition of subject identifiers.

    Attributes:
        train: Training subjects, sorted.
        test: Test subjects, sorted.
        seed: Seed the split was made with.
        fold: Index of the test fold for k-fold splits, else ``None``.
        num_folds: Number of folds for k-fold splits, else ``None``.
    """

    train: tuple[str, ...]
    test: tuple[str, ...]
    seed: int
    fold: int | None = None
    num_folds: int | None = None

    def __post_init__(self) -> None:
        overlap = set(self.train) & set(self.test)
        if overlap:
            raise ValueError(
                f"SubjectSplit has subjects on both sides: {sorted(overlap)[:5]} "
                f"({len(overlap)} in all)."
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "train": list(self.train),
            "test": list(self.test),
            "seed": self.seed,
            "fold": self.fold,
            "num_folds": self.num_folds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubjectSplit:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: A missing key or a subject on both sides.
        """
        missing = {"train", "test", "seed"} - set(data)
        if missing:
            raise ValueError(f"split dict lacks the keys {sorted(missing)}; got {sorted(data)}.")
        return cls(
            train=tuple(str(s) for s in data["train"]),
            test=tuple(str(s) for s in data["test"]),
            seed=int(data["seed"]),
            fold=None if data.get("fold") is None else int(data["fold"]),
            num_folds=None if data.get("num_folds") is None else int(data["num_folds"]),
        )

    def indices(self, subject_ids: Sequence[str]) -> tuple[list[int], list[int]]:
        """Dataset indices (one per scan) on the train and test side.

        Args:
            subject_ids: The subject of every dataset index.

        Raises:
            ValueError: A subject that is in neither side of the split.
        """
        train, test = set(self.train), set(self.test)
        train_idx: list[int] = []
        test_idx: list[int] = []
        for index, subject in enumerate(subject_ids):
            if subject in train:
                train_idx.append(index)
            elif subject in test:
                test_idx.append(index)
            else:
                raise ValueError(
                    f"subject_ids[{index}] = {subject!r} is in neither side of the split."
                )
        return train_idx, test_idx


def save_splits(path: str | Path, splits: Sequence[SubjectSplit]) -> None:
    """Write splits (e.g. all folds of :func:`kfold_subjects`) as a JSON list."""
    Path(path).write_text(json.dumps([s.to_dict() for s in splits], indent=1) + "\n")


def load_splits(path: str | Path) -> list[SubjectSplit]:
    """Read splits written by :func:`save_splits`."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of splits, got {type(data).__name__}.")
    return [SubjectSplit.from_dict(d) for d in data]


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    return int(seed)


def _unique_subjects(subject_ids: Sequence[str]) -> list[str]:
    if isinstance(subject_ids, str):
        raise TypeError("subject_ids must be a sequence of str, got a single str.")
    for index, subject in enumerate(subject_ids):
        if not isinstance(subject, str):
            raise TypeError(f"subject_ids[{index}] must be a str, got {type(subject).__name__}.")
    subjects = sorted(set(subject_ids))
    if not subjects:
        raise ValueError("subject_ids is empty.")
    return subjects


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, str(value))


def _per_subject(
    subject_ids: Sequence[str], values: Mapping[str, Any] | Sequence[Any], name: str
) -> dict[str, list[Any]]:
    """Every value given for each subject (a mapping, or a sequence aligned with the ids)."""
    out: dict[str, list[Any]] = {}
    if isinstance(values, Mapping):
        for subject in subject_ids:
            if subject in values:
                out.setdefault(subject, [values[subject]])
        return out
    if isinstance(values, str) or len(values) != len(subject_ids):
        length = "a str" if isinstance(values, str) else f"length {len(values)}"
        raise ValueError(
            f"{name} must be a mapping subject -> value or a sequence aligned with subject_ids "
            f"(length {len(subject_ids)}), got {length}."
        )
    for subject, value in zip(subject_ids, values):
        out.setdefault(subject, []).append(value)
    return out


def _subject_labels(
    subject_ids: Sequence[str], subjects: list[str], labels: Labels | None
) -> dict[str, LabelValue] | None:
    if labels is None:
        return None
    given = _per_subject(subject_ids, labels, "labels")
    out: dict[str, LabelValue] = {}
    for subject in subjects:
        values = given.get(subject)
        if not values:
            raise ValueError(f"labels has no label for subject {subject!r}.")
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            raise ValueError(f"labels has a missing (None/NaN) label for subject {subject!r}.")
        if len(set(values)) > 1:
            raise ValueError(
                f"labels disagree between scans of subject {subject!r}: {sorted(set(values), key=_sort_key)}."
            )
        out[subject] = values[0]
    return out


def _units(
    subject_ids: Sequence[str], subjects: list[str], groups: Groups | None
) -> list[list[str]]:
    """Subjects that must stay together (connected through shared group keys), sorted."""
    parent = {s: s for s in subjects}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    if groups is not None:
        first: dict[Hashable, str] = {}
        for subject, keys in _per_subject(subject_ids, groups, "groups").items():
            for key in keys:
                if key is None:
                    continue
                if key in first:
                    a, b = find(first[key]), find(subject)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
                else:
                    first[key] = subject
    members: dict[str, list[str]] = {}
    for subject in subjects:
        members.setdefault(find(subject), []).append(subject)
    return sorted(members.values())


def _strata(
    units: list[list[str]], subject_labels: dict[str, LabelValue] | None
) -> dict[Any, list[list[str]]]:
    """Units per stratum; a unit's stratum is its subjects' most common label."""
    if subject_labels is None:
        return {None: units}
    strata: dict[Any, list[list[str]]] = {}
    for unit in units:
        counts = Counter(subject_labels[s] for s in unit)
        label = min(counts, key=lambda v: (-counts[v], _sort_key(v)))
        strata.setdefault(label, []).append(unit)
    return dict(sorted(strata.items(), key=lambda item: _sort_key(item[0])))


def _largest_remainder(quotas: list[float], total: int) -> list[int]:
    floors = [math.floor(q) for q in quotas]
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in order[: max(0, total - sum(floors))]:
        floors[i] += 1
    return floors


def train_test_split_subjects(
    subject_ids: Sequence[str],
    labels: Labels | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    groups: Groups | None = None,
) -> SubjectSplit:
    """Split subjects into train and test, keeping scans and groups together.

    The number of test subjects is ``round(test_fraction * S)``, shared out over the label
    strata by largest remainder; within a stratum, shuffled units (a subject, or a group of
    subjects) join the test side while that brings its count closer to the stratum's share.
    With large groups the fractions are met as closely as the groups allow.

    Args:
        subject_ids: Subject of every scan (repeats allowed) or the unique subjects.
        labels: Categorical label to stratify by: a mapping subject -> label or a sequence
            aligned with ``subject_ids``. Scans of one subject must agree. A group is
            stratified by its subjects' most common label.
        test_fraction: Share of subjects in the test set, in ``(0, 1)``.
        seed: Seed of the shuffling.
        groups: Group key per subject (mapping) or per scan (aligned sequence); subjects
            sharing a key, directly or through a chain of keys, stay on one side. Subjects
            without a key (absent from the mapping, or ``None``) form their own group.

    Returns:
        The split, subjects sorted on each side.

    Raises:
        ValueError: ``test_fraction`` outside ``(0, 1)``, fewer than two units, a side left
            empty, a missing or inconsistent label, length mismatches.

    Example:
        >>> split = train_test_split_subjects(["a", "a", "b", "c", "d", "e"], test_fraction=0.4)
        >>> len(split.train), len(split.test)
        (3, 2)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    seed = _check_seed(seed)
    subjects = _unique_subjects(subject_ids)
    subject_labels = _subject_labels(subject_ids, subjects, labels)
    units = _units(subject_ids, subjects, groups)
    if len(units) < 2:
        raise ValueError(
            f"cannot split {len(subjects)} subjects in {len(units)} group(s): a split needs at "
            "least two independent subjects or groups."
        )
    strata = _strata(units, subject_labels)
    sizes = [sum(len(u) for u in members) for members in strata.values()]
    targets = _largest_remainder(
        [test_fraction * n for n in sizes], round(test_fraction * len(subjects))
    )
    rng = np.random.default_rng(seed)
    test: list[str] = []
    for members, target in zip(strata.values(), targets):
        count = 0
        for i in rng.permutation(len(members)):
            unit = members[i]
            if abs(count + len(unit) - target) < abs(count - target):
                test += unit
                count += len(unit)
    test_set = set(test)
    train = [s for s in subjects if s not in test_set]
    if not test or not train:
        side = "test" if not test else "train"
        raise ValueError(
            f"test_fraction={test_fraction} leaves the {side} side empty for {len(subjects)} "
            f"subjects in {len(units)} groups: change test_fraction."
        )
    return SubjectSplit(train=tuple(train), test=tuple(sorted(test)), seed=seed)


def kfold_subjects(
    subject_ids: Sequence[str],
    n_folds: int,
    labels: Labels | None = None,
    seed: int = 0,
    groups: Groups | None = None,
) -> list[SubjectSplit]:
    """Subject-level (stratified, grouped) k-fold cross-validation splits.

    Every subject is in the test side of exactly one fold. Units (subjects or groups) are
    shuffled within each label stratum, largest first, and each goes to the fold with the
    fewest subjects of its stratum (then the fewest subjects overall, then the lowest
    index), so per-class counts of the folds differ by at most one for ungrouped subjects.

    Args:
        subject_ids: Subject of every scan (repeats allowed).
        n_folds: Number of folds, at least 2.
        labels: Categorical label to stratify by (see :func:`train_test_split_subjects`).
        seed: Seed of the shuffling.
        groups: Groups of subjects that stay together (see :func:`train_test_split_subjects`).

    Returns:
        ``n_folds`` splits; split ``k`` has fold ``k`` as its test side.

    Raises:
        ValueError: ``n_folds < 2``, fewer units than folds, bad labels or groups.

    Example:
        >>> folds = kfold_subjects([f"s{i}" for i in range(10)], n_folds=5)
        >>> [len(f.test) for f in folds]
        [2, 2, 2, 2, 2]
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise ValueError(f"n_folds must be an int of at least 2, got {n_folds!r}.")
    seed = _check_seed(seed)
    subjects = _unique_subjects(subject_ids)
    subject_labels = _subject_labels(subject_ids, subjects, labels)
    units = _units(subject_ids, subjects, groups)
    if len(units) < n_folds:
        raise ValueError(
            f"cannot make {n_folds} folds from {len(subjects)} subjects in {len(units)} "
            "independent group(s): lower n_folds."
        )
    strata = _strata(units, subject_labels)
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    totals = [0] * n_folds
    ordered = sorted(strata.values(), key=lambda m: -sum(len(u) for u in m))
    for members in ordered:
        shuffled = [members[i] for i in rng.permutation(len(members))]
        shuffled.sort(key=len, reverse=True)
        in_stratum = [0] * n_folds
        for unit in shuffled:
            k = min(range(n_folds), key=lambda f: (in_stratum[f], totals[f], f))
            folds[k] += unit
            in_stratum[k] += len(unit)
            totals[k] += len(unit)
    splits = []
    for k, fold in enumerate(folds):
        held_out = set(fold)
        train = tuple(s for s in subjects if s not in held_out)
        splits.append(SubjectSplit(train, tuple(sorted(fold)), seed, fold=k, num_folds=n_folds))
    return splits


def label_fraction_subset(
    train_subjects: Sequence[str],
    labels: Labels | None,
    fraction: float,
    seed: int = 0,
) -> tuple[str, ...]:
    """A class-stratified subset of the training subjects for low-label curves.

    Each class keeps ``round(fraction * n_class)`` subjects (halves rounded up). Subsets are
    nested: for one ``seed``, the subset at a smaller fraction is contained in the subset at
    a larger one.

    Args:
        train_subjects: The training subjects (repeats are collapsed).
        labels: Class per subject (mapping, or a sequence aligned with ``train_subjects``);
            ``None`` for an unstratified subset (at least one subject).
        fraction: Share of subjects to keep, in ``(0, 1]``.
        seed: Seed of the selection.

    Returns:
        The kept subjects, sorted.

    Raises:
        ValueError: ``fraction`` outside ``(0, 1]``, or a fraction that would leave a class
            empty (the message gives the smallest fraction that keeps it).

    Example:
        >>> subjects = [f"s{i}" for i in range(10)]
        >>> labels = {s: i % 2 for i, s in enumerate(subjects)}
        >>> len(label_fraction_subset(subjects, labels, 0.2))
        2
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    seed = _check_seed(seed)
    subjects = _unique_subjects(train_subjects)
    subject_labels = _subject_labels(train_subjects, subjects, labels)
    strata = _strata([[s] for s in subjects], subject_labels)
    rng = np.random.default_rng(seed)
    kept: list[str] = []
    for label, members in strata.items():
        n = len(members)
        k = min(n, math.floor(fraction * n + 0.5))
        if k == 0:
            what = "the subset" if label is None else f"class {label!r}"
            raise ValueError(
                f"fraction={fraction} leaves {what} empty ({n} training subjects); use a "
                f"fraction of at least {1 / (2 * n):.4g}."
            )
        kept += [members[i][0] for i in rng.permutation(n)[:k]]
    return tuple(sorted(kept))
