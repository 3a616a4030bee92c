"""Scores of the probe records: columns, two-way bootstrap summaries, paired comparisons and
the instrument check.

Every column is a statistic of a (seeds x test subjects) layout built from the probe
records (:mod:`lightly_topo.benchmark.probing`), summarised by its value and a two-way
bootstrap 95% interval (:mod:`lightly_topo.eval.bootstrap`: seeds and subjects both
resampled), so intervals account for the pretraining seeds and for the test subjects.
Paired differences use the same draws for both methods.

Headline columns (:data:`HEADLINE`):

* ``deep_grey``: Dice of the deep grey nuclei (per-modality dense probe), mean over the
  eight nuclei of every test subject;
* ``subsets``: deep grey Dice of the fused probe, averaged over every modality subset kept
  at test time;
* ``labels``: balanced accuracy of the linear probe on pooled features, averaged over the
  subject labels.

The instrument check (:func:`instrument_check`) asks the positive control to beat
``scratch`` on every headline column with a paired interval above 0. Lesion Dice is a
secondary column: on the CPU presets the supervised control does not beat the random
initialisation at it (measured, see the report's control line of each secondary column),
so it cannot rank methods there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightly_topo.benchmark.presets import ALL_METHODS, INSTANCE_METHODS, INTENSITY, TOPO_METHODS
from lightly_topo.eval.bootstrap import (
    BalancedAccuracyScore,
    Draws,
    MeanScore,
    Score,
    interval,
    paired_interval,
)

Results = list[dict[str, Any]]


@dataclass(frozen=True)
class Column:
    """A result column.

    Attributes:
        key: Short name (CSV, JSON; ``deep_grey`` is the headline classes' column whatever
            they are).
        header: Table header; ``{target}`` and ``{short}`` stand for the name of the
            headline classes (:meth:`ScoreTable.header`).
        score: Builds the column's :class:`~lightly_topo.eval.bootstrap.Score` from a
            method's probe results, one per seed (seed order shared by all methods).
        higher_is_better: Direction.
        unit: Printed after values (``""`` for scores in [0, 1]).
    """

    key: str
    header: str
    score: Callable[[Results], Score]
    higher_is_better: bool = True
    unit: str = ""


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _dense(results: Results, layout: str, field: str) -> np.ndarray:
    """``(S, J, K)`` per-class values of a dense layout."""
    return np.array(
        [[[_nan(v) for v in row] for row in r["dense"][layout][field]] for r in results],
        dtype=np.float64,
    )


def _class_mean(values: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    picked = values[..., list(classes)]
    finite = np.isfinite(picked)
    with np.errstate(invalid="ignore"):
        return np.where(
            finite.any(-1),
            np.where(finite, picked, 0).sum(-1) / np.maximum(finite.sum(-1), 1),
            np.nan,
        )


def _structures(result: dict[str, Any]) -> list[int]:
    names = result["class_names"]
    lesion = result.get("lesion_class")
    return [i for i in range(1, len(names)) if i != lesion]


def headline_dice(layout: str) -> Callable[[Results], Score]:
    def build(results: Results) -> Score:
        classes = results[0]["headline_classes"] or _structures(results[0])
        return MeanScore(_class_mean(_dense(results, layout, "dice"), classes))

    return build


def structures_dice(results: Results) -> Score:
    return MeanScore(_class_mean(_dense(results, "per_modality", "dice"), _structures(results[0])))


def lesion_field(layout: str, field: str) -> Callable[[Results], Score]:
    def build(results: Results) -> Score:
        lesion = results[0].get("lesion_class")
        values = _dense(results, layout, field)
        if lesion is None:
            return MeanScore(np.full(values.shape[:2], np.nan))
        return MeanScore(values[..., lesion])

    return build


def subset_mean(field: str) -> Callable[[Results], Score]:
    def build(results: Results) -> Score:
        per_seed = []
        for r in results:
            rows = np.array(
                [[_nan(v) for v in values[field]] for values in r["subsets"].values()],
                dtype=np.float64,
            )  # (subsets, J)
            finite = np.isfinite(rows)
            with np.errstate(invalid="ignore"):
                per_seed.append(
                    np.where(
                        finite.any(0),
                        np.where(finite, rows, 0).sum(0) / np.maximum(finite.sum(0), 1),
                        np.nan,
                    )
                )
        return MeanScore(np.stack(per_seed))

    return build


def label_accuracy(kind: str, label: str | None = None) -> Callable[[Results], Score]:
    def build(results: Results) -> Score:
        names = [label] if label is not None else sorted(results[0]["subject_labels"])
        predictions, targets = [], []
        for name in names:
            classes = results[0]["subject_labels"][name]["classes"]
            code = {c: i for i, c in enumerate(classes)}
            target = results[0]["subject_labels"][name]["target"]
            targets.append([code.get(t, -1) if t is not None else -1 for t in target])
            predictions.append(
                [[code.get(p, -1) for p in r["subject_labels"][name][kind]] for r in results]
            )
        if not names:
            return MeanScore(np.full((len(results), 1), np.nan))
        return BalancedAccuracyScore(np.array(predictions), np.array(targets))

    return build


HEADLINE: tuple[Column, ...] = (
    Column("deep_grey", "{target} Dice", headline_dice("per_modality")),
    Column("subsets", "{short} Dice, mean over modality subsets", subset_mean("headline")),
    Column("labels", "Subject labels, bal. acc. (linear)", label_accuracy("linear")),
)

SECONDARY: tuple[Column, ...] = (
    Column("lesion", "Lesion Dice", lesion_field("per_modality", "dice")),
    Column("structures", "All structures Dice", structures_dice),
    Column(
        "lesion_fp_ml",
        "Lesion false positives, lesion-free subjects (ml)",
        lesion_field("per_modality", "false_positive_ml"),
        higher_is_better=False,
        unit=" ml",
    ),
    Column("fused_deep_grey", "{short} Dice, fused probe", headline_dice("fused")),
    Column("fused_lesion", "Lesion Dice, fused probe", lesion_field("fused", "dice")),
    Column("subsets_lesion", "Lesion Dice, mean over modality subsets", subset_mean("lesion")),
    Column("labels_knn", "Subject labels, bal. acc. (kNN)", label_accuracy("knn")),
)


@dataclass
class Summary:
    """A column's value for one method: point estimate and 95% interval."""

    point: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, float]:
        return {
            "mean": self.point,
            "low": self.low,
            "high": self.high,
            "half_width": self.half_width,
        }


class ScoreTable:
    """Scores of every method and column on the seeds all methods share.

    Args:
        results: ``results[method][seed]``: the ``result`` of each ok probe record.
        methods: Row order.
        draws: Bootstrap draws.
        seed: Seed of the draws.
    """

    def __init__(
        self,
        results: dict[str, dict[int, dict[str, Any]]],
        methods: Sequence[str],
        draws: int = 2000,
        seed: int = 0,
    ) -> None:
        self.methods = [m for m in methods if results.get(m)]
        shared = (
            set.intersection(*(set(results[m]) for m in self.methods)) if self.methods else set()
        )
        self.seeds = sorted(shared)
        self.results = results
        self._scores: dict[tuple[str, str], Score] = {}
        self.columns = {c.key: c for c in (*HEADLINE, *SECONDARY)}
        self._draws: dict[int, Draws] = {}
        self.n_draws, self.draw_seed = draws, seed

    @property
    def target(self) -> str:
        """Name of the headline voxel classes (``Deep grey nuclei`` on the synthetic brains)."""
        if not self.methods or not self.seeds:
            return "Headline classes"
        return str(
            self.results[self.methods[0]][self.seeds[0]].get("headline_name", "Deep grey nuclei")
        )

    def header(self, column: Column) -> str:
        """The column's header with the headline classes named."""
        short = "Deep grey" if self.target == "Deep grey nuclei" else self.target
        return column.header.format(target=self.target, short=short)

    def has_labels(self) -> bool:
        """Whether any subject label was probed (a run without one skips that task)."""
        if not self.methods or not self.seeds:
            return False
        return bool(self.results[self.methods[0]][self.seeds[0]]["subject_labels"])

    def label_columns(self) -> list[Column]:
        """One linear-probe column per subject label."""
        if not self.methods or not self.seeds:
            return []
        first = self.results[self.methods[0]][self.seeds[0]]
        return [
            Column(f"label:{name}", f"{name}, bal. acc. (linear)", label_accuracy("linear", name))
            for name in sorted(first["subject_labels"])
        ]

    def score(self, method: str, column: Column) -> Score:
        key = (method, column.key)
        if key not in self._scores:
            self._scores[key] = column.score([self.results[method][s] for s in self.seeds])
        return self._scores[key]

    def draws(self, column: Column) -> Draws:
        values = self.score(self.methods[0], column)
        n_subjects = (
            values.values.shape[1] if isinstance(values, MeanScore) else values.predictions.shape[2]  # type: ignore[attr-defined]
        )
        if n_subjects not in self._draws:
            self._draws[n_subjects] = Draws.make(
                len(self.seeds), n_subjects, draws=self.n_draws, seed=self.draw_seed
            )
        return self._draws[n_subjects]

    def summary(self, method: str, column: Column) -> Summary:
        return Summary(*interval(self.score(method, column), self.draws(column)))

    def paired(self, method: str, baseline: str, column: Column) -> dict[str, Any]:
        """Paired difference ``method - baseline`` with a verdict for ``method``."""
        point, low, high = paired_interval(
            self.score(method, column), self.score(baseline, column), self.draws(column)
        )
        better = low > 0 if column.higher_is_better else high < 0
        worse = high < 0 if column.higher_is_better else low > 0
        if not (math.isfinite(low) and math.isfinite(high)):
            verdict = "cannot tell (undefined)"
        elif high - low <= 1e-12:
            verdict = "cannot tell (no spread)"
        else:
            verdict = "wins" if better else "loses" if worse else "no clear difference"
        return {
            "method": method,
            "baseline": baseline,
            "column": column.key,
            "mean": point,
            "low": low,
            "high": high,
            "verdict": verdict,
        }

    def best(self, column: Column, among: Sequence[str]) -> str | None:
        candidates = [m for m in among if m in self.methods]
        values = {m: self.score(m, column).point() for m in candidates}
        finite = [m for m in candidates if math.isfinite(values[m])]
        if not finite:
            return None
        sign = 1.0 if column.higher_is_better else -1.0
        return max(finite, key=lambda m: (sign * values[m], -candidates.index(m)))

    def comparisons(self) -> list[dict[str, Any]]:
        """Every topology method against ``scratch`` and the column's best instance-level
        baseline, on the headline columns."""
        rows = []
        instance = [m for m in self.methods if m in INSTANCE_METHODS]
        for method in [m for m in self.methods if m in TOPO_METHODS]:
            for column in HEADLINE:
                if "scratch" in self.methods:
                    rows.append({**self.paired(method, "scratch", column), "against": "scratch"})
                best = self.best(column, instance)
                if best is not None:
                    rows.append(
                        {
                            **self.paired(method, best, column),
                            "against": "best instance-level baseline",
                        }
                    )
        return rows


def probe_results(records: Sequence[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """``results[method][seed]`` of every ok probe record; the folds of a real set merged
    (:func:`merge_folds`) where every fold of the (method, seed) is there."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    folds: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for record in records:
        if record.get("kind") != "probes" or record.get("status") != "ok":
            continue
        key = (record["method"], int(record["seed"]))
        if record.get("fold") is None:
            out.setdefault(key[0], {})[key[1]] = record["result"]
        else:
            folds.setdefault(key, {})[int(record["fold"])] = record["result"]
    expected = max((len(v) for v in folds.values()), default=0)
    for (method, seed), by_fold in folds.items():
        if len(by_fold) == expected:
            out.setdefault(method, {})[seed] = merge_folds([by_fold[f] for f in sorted(by_fold)])
    return out


def merge_folds(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One probe result from the results of every cross-validation fold: the per-subject
    lists concatenated in fold order (each subject is a test subject of one fold); a
    subject label kept where every fold probed it, its classes the union."""
    merged = dict(results[0])
    for key in ("test_subjects", "dense_test_subjects"):
        merged[key] = [s for r in results for s in r[key]]
    merged["dense"] = {
        layout: {field: [v for r in results for v in r["dense"][layout][field]] for field in fields}
        for layout, fields in results[0]["dense"].items()
    }
    merged["subsets"] = {
        subset: {
            field: [v for r in results for v in r["subsets"][subset][field]] for field in fields
        }
        for subset, fields in results[0]["subsets"].items()
    }
    labels = {}
    for name in results[0]["subject_labels"]:
        if not all(name in r["subject_labels"] for r in results):
            continue
        parts = [r["subject_labels"][name] for r in results]
        labels[name] = {
            "classes": sorted({c for p in parts for c in p["classes"]}),
            **{kind: [v for p in parts for v in p[kind]] for kind in parts[0] if kind != "classes"},
        }
    merged["subject_labels"] = labels
    merged["train_voxels"] = sum(int(r["train_voxels"]) for r in results)
    merged["wall_s"] = sum(float(r["wall_s"]) for r in results)
    merged["folds"] = len(results)
    return merged


def row_order(found: Sequence[str], preferred: Sequence[str] = ()) -> list[str]:
    """The floor, the controls, then the methods in the preset's order."""
    first = [
        m for m in (INTENSITY, "scratch", "supervised", *preferred, *ALL_METHODS) if m in found
    ]
    return list(dict.fromkeys([*first, *sorted(found)]))


def control_line(table: ScoreTable, columns: Sequence[Column]) -> list[dict[str, Any]]:
    """``supervised - scratch`` on each column (empty without both controls)."""
    if not {"supervised", "scratch"} <= set(table.methods) or len(table.seeds) < 2:
        return []
    return [table.paired("supervised", "scratch", column) for column in columns]


def instrument_check(table: ScoreTable) -> dict[str, Any]:
    """Does the positive control beat ``scratch`` on every headline column?

    Returns:
        ``{"passed": bool, "reason": str, "columns": [paired rows]}``; ``passed`` is False
        where a control is missing, too few seeds are shared, or any headline interval
        does not lie above 0.
    """
    missing = [m for m in ("supervised", "scratch") if m not in table.methods]
    if missing:
        return {
            "passed": False,
            "reason": f"controls missing from the run: {missing}",
            "columns": [],
        }
    if len(table.seeds) < 2:
        return {
            "passed": False,
            "reason": "fewer than 2 seeds shared by all methods",
            "columns": [],
        }
    columns = [c for c in HEADLINE if c.key != "labels" or table.has_labels()]
    rows = [table.paired("supervised", "scratch", column) for column in columns]
    failed = [r["column"] for r in rows if r["verdict"] != "wins"]
    reason = (
        "the positive control beats scratch on every headline column"
        if not failed
        else f"the positive control does not beat scratch on {failed}"
    )
    if len(columns) < len(HEADLINE):
        reason += " (no subject label in this data set: the label column is skipped)"
    return {"passed": not failed, "reason": reason, "columns": rows}


__all__ = [
    "HEADLINE",
    "INTENSITY",
    "SECONDARY",
    "Column",
    "ScoreTable",
    "Summary",
    "instrument_check",
    "merge_folds",
    "probe_results",
    "row_order",
]
