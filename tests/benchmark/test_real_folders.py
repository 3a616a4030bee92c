"""Real data sets through the probe protocol (tiny LGG-like folders written here; the
``shared/data`` set where it exists)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from lightly_topo.benchmark import get_preset, run_benchmark
from lightly_topo.benchmark.real_data import (
    RealDataError,
    choose_spacing,
    fold_table,
    real_probe_set,
)
from lightly_topo.benchmark.scores import merge_folds, probe_results

SHARED_LGG = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tcga_lgg_buda2019"


def write_lgg_like(root: Path, n: int = 8, missing: str = "t1ce") -> Path:
    """``n`` cases of the TCGA-LGG layout: T1, FLAIR, T1ce (the first case lacks
    ``missing``), a FLAIR-abnormality mask, 2 x 2 x 1 mm headers and slice counts that
    differ; ``data.csv`` with a grade and a sex label."""
    rng = np.random.default_rng(0)
    rows = ["Patient,neoplasm_histologic_grade,gender"]
    for i in range(n):
        case = f"TCGA_AA_{1000 + i}_20000101"
        folder = root / case
        folder.mkdir(parents=True)
        shape = (24, 24, 12 + 2 * i)
        brain = np.zeros(shape, dtype=np.float32)
        brain[3:-3, 3:-3, 2:-2] = 1.0
        lesion = np.zeros(shape, dtype=np.uint8)
        lesion[8:14, 8:14, 4:8] = 1
        affine = np.diag([2.0, 2.0, 1.0, 1.0])
        for modality, gain in (("t1", 1.0), ("flair", 2.0), ("t1ce", 1.5)):
            if i == 0 and modality == missing:
                continue
            image = brain * (100 + 10 * rng.standard_normal(shape)) + gain * 50 * lesion
            nib.save(
                nib.Nifti1Image(image.astype(np.float32), affine),
                folder / f"{case}_{modality}.nii.gz",
            )
        nib.save(nib.Nifti1Image(lesion, affine), folder / f"{case}_seg.nii.gz")
        rows.append(f"TCGA_AA_{1000 + i},{1 + i % 2},{1 + (i // 2) % 2}")
    (root / "data.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize(
    ("spacings", "shapes", "max_size", "expected"),
    [
        ([(1, 1, 1)], [(40, 40, 40)], 48, (1.0, 1.0, 1.0)),
        ([(2, 2, 1)], [(128, 128, 40)], 48, (6.0, 6.0, 1.0)),
        ([(1, 1, 3), (1, 1, 3), (1, 1, 5)], [(100, 90, 30)] * 3, 48, (3.0, 3.0, 3.0)),
        ([(2, 2, 2)], [(90, 110, 100)], 48, (6.0, 6.0, 6.0)),
    ],
)
def test_spacing_is_coarsened_per_axis_by_whole_factors(spacings, shapes, max_size, expected):
    header, target = choose_spacing(spacings, shapes, max_size)
    assert target == expected
    assert all(t / h == round(t / h) for t, h in zip(target, header))


@pytest.fixture(scope="module")
def lgg_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lgg_like(tmp_path_factory.mktemp("lgg") / "tcga_lgg_like")


def test_real_probe_set_keeps_shapes_labels_and_missing_modalities(lgg_like: Path) -> None:
    preset = get_preset("smoke", real_max_size=20, real_folds=2)
    probes = real_probe_set(preset, lgg_like)
    assert probes.class_names == ("background", "flair_abnormality")
    assert probes.headline_name == "FLAIR abnormality"
    assert list(probes.labels) == ["neoplasm_histologic_grade"]
    assert probes.modality_names == ("t1", "t1ce", "flair")
    assert probes.masks.sum().item() == 8 * 3 - 1
    assert not bool(probes.masks[0, 1])
    assert float(probes.images[0][1].abs().sum()) == 0.0
    shapes = {tuple(image.shape[1:]) for image in probes.images}
    assert len(shapes) > 1, "subjects keep their own shapes"
    for image, target in zip(probes.images, probes.targets):
        assert image.shape[1:] == target.shape
        assert all(s % 8 == 0 and s >= preset.crop_size for s in target.shape)
    # 2 x 2 x 1 mm headers, 24 x 24 x 12-26 voxels (median 19): in-plane coarsened by 2,
    # slices kept.
    assert probes.grid.header_spacing == (2.0, 2.0, 1.0)
    assert probes.grid.spacing == (4.0, 4.0, 1.0)
    tested = sorted(i for _, test in probes.splits() for i in test)
    assert tested == list(range(8)), "every subject is a test subject of exactly one fold"
    for train, test in probes.splits():
        assert not set(train) & set(test)
        assert sorted(train + test) == list(range(8))
    assert "4 x 4 x 1 mm" in probes.description and "2-fold" in probes.description


def test_pretraining_table_of_a_fold_holds_its_training_subjects_only(lgg_like: Path) -> None:
    probes = real_probe_set(get_preset("smoke", real_max_size=20, real_folds=2), lgg_like)
    train, test = probes.splits()[1]
    table = fold_table(probes, train)
    assert table.subject_ids == [probes.subject_ids[i] for i in train]
    assert not set(table.subject_ids) & {probes.subject_ids[i] for i in test}
    item = table.dataset[0]
    assert set(item["images"]) == {
        m for m, ok in zip(probes.modality_names, probes.masks[train[0]]) if ok
    }
    assert item["images"]["t1"].shape == (1, *probes.targets[train[0]].shape)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"subject_label": "grade"}, "gender (8 subjects), neoplasm_histologic_grade (8 subjects)"),
        ({"real_folds": 5}, "needs at least 10"),
    ],
)
def test_bad_real_data_settings_are_clear_errors(lgg_like: Path, overrides, message) -> None:
    with pytest.raises(RealDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        real_probe_set(get_preset("smoke", real_max_size=20, **overrides), lgg_like)


def test_merge_folds_concatenates_subjects_and_unites_label_classes() -> None:
    def fold(ids: list[str], classes: list[str]) -> dict:
        return {
            "test_subjects": ids,
            "dense_test_subjects": ids,
            "class_names": ["background", "lesion"],
            "headline_classes": [1],
            "lesion_class": 1,
            "dense": {"per_modality": {"dice": [[1.0, 0.5]] * len(ids)}},
            "subsets": {"t1": {"headline": [0.5] * len(ids)}},
            "subject_labels": {
                "grade": {"classes": classes, "target": classes[:1] * len(ids)},
                "only_here": {"classes": ["a", "b"], "target": ["a"] * len(ids)},
            },
            "train_voxels": 10,
            "wall_s": 1.0,
        }

    first, second = fold(["a", "b"], ["1", "2"]), fold(["c"], ["2", "3"])
    del second["subject_labels"]["only_here"]
    merged = merge_folds([first, second])
    assert merged["test_subjects"] == ["a", "b", "c"]
    assert len(merged["dense"]["per_modality"]["dice"]) == 3
    assert merged["subject_labels"]["grade"]["classes"] == ["1", "2", "3"]
    assert merged["subject_labels"]["grade"]["target"] == ["1", "1", "2"]
    assert "only_here" not in merged["subject_labels"]
    assert merged["train_voxels"] == 20

    records = [
        {"kind": "probes", "status": "ok", "method": "m", "seed": 0, "fold": f, "result": r}
        for f, r in ((0, first), (1, second))
    ]
    assert probe_results(records)["m"][0]["test_subjects"] == ["a", "b", "c"]
    # A method with a fold missing (a run in progress) is left out rather than scored on
    # part of the subjects.
    assert "x" not in probe_results([*records, {**records[0], "method": "x"}])


def test_benchmark_on_a_real_folder_runs_every_fold_and_reports_it(lgg_like: Path, tmp_path):
    preset = get_preset(
        "smoke",
        methods=("scratch", "supervised", "simclr", "taco"),
        real_max_size=20,
        real_folds=2,
    )
    result = run_benchmark(preset, tmp_path, data=lgg_like)
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert "pretrain__taco__s1__f1.json" in runs and "probes__scratch__s0__f0.json" in runs
    supervised = json.loads((tmp_path / "runs" / "pretrain__supervised__s0__f1.json").read_text())
    assert "training subjects of fold 1" in supervised["pretrain_data"]
    merged = probe_results(result.records)
    for method in ("intensity", "scratch", "supervised", "simclr", "taco"):
        assert sorted(merged[method][0]["test_subjects"]) == sorted(
            p.name for p in lgg_like.iterdir() if p.is_dir()
        )
    # The subject without T1ce is scored under no subset that holds T1ce, and only there.
    subsets = merged["scratch"][0]["subsets"]
    where = merged["scratch"][0]["dense_test_subjects"].index("TCGA_AA_1000_20000101")
    for name, values in subsets.items():
        assert (values["headline"][where] is None) == ("t1ce" in name.split("+"))
    report = (tmp_path / "results.md").read_text()
    assert "FLAIR abnormality Dice" in report and "Real data: 8 subjects" in report
    assert "2-fold subject-level cross-validation" in report
    again = run_benchmark(preset, tmp_path, data=lgg_like)
    assert again.reused == len(again.records)
    assert (tmp_path / "results.md").read_text().split("Produced by")[0] == report.split(
        "Produced by"
    )[0]


@pytest.mark.skipif(not SHARED_LGG.is_dir(), reason="shared/data/tcga_lgg_buda2019 is absent")
def test_the_shared_lgg_set_reads_with_the_defaults() -> None:
    probes = real_probe_set(get_preset("quick"), SHARED_LGG)
    assert len(probes.subject_ids) == 70
    assert list(probes.labels) == ["neoplasm_histologic_grade"]
    assert len(probes.splits()) == 3
    assert int((~probes.masks).any(1).sum()) == 6
    assert probes.grid.spacing == (6.0, 6.0, 1.0)
    assert torch.cat([t.flatten() for t in probes.targets]).max() == 1
