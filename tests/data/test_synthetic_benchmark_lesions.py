"""Lesion parameters and parcellation targets of the synthetic brains."""

from __future__ import annotations

import pytest
import torch

from lightly_topo.data.synthetic import (
    BENCHMARK_LESIONS,
    LESION_CONTRAST,
    TISSUE_CONTRAST,
    TISSUES,
    LesionParams,
    SyntheticBrains,
)
from lightly_topo.data.synthetic.parcellation import (
    DEEP_GREY_CLASSES,
    LESION_CLASS,
    PARCELLATION_CLASSES,
    parcellation_map,
)
from lightly_topo.data.synthetic.structures import STRUCTURES


def test_default_lesion_params_keep_the_original_subjects() -> None:
    default = SyntheticBrains(3, size=16, modalities=("t1", "flair"), seed=4)
    explicit = SyntheticBrains(
        3, size=16, modalities=("t1", "flair"), seed=4, lesion=LesionParams()
    )
    for i in range(3):
        a, b = default[i], explicit[i]
        assert torch.equal(a["label_map"], b["label_map"])
        for name in a["images"]:
            assert torch.equal(a["images"][name], b["images"][name])


def test_benchmark_hyperintensities_are_larger_than_a_voxel() -> None:
    brains = SyntheticBrains(
        12, size=32, modalities=("flair",), seed=1, fov_mm=176.0, lesion=BENCHMARK_LESIONS
    )
    voxels = []
    for i in range(12):
        if brains.subject_labels(i)["lesion_type"] == "wmh":
            voxels.append(int((brains.generate(i).lesion_map > 0).sum()))
    assert voxels and min(voxels) >= 20, voxels


def test_lower_contrast_moves_lesions_towards_white_matter() -> None:
    kwargs = {"size": 32, "modalities": ("flair",), "seed": 2, "fov_mm": 176.0}
    strong = SyntheticBrains(6, **kwargs).generate(2)  # a wmh subject (schedule position 2)
    weak = SyntheticBrains(6, lesion=LesionParams(contrast=0.4), **kwargs).generate(2)
    assert torch.equal(strong.lesion_map, weak.lesion_map)
    lesion = strong.lesion_map > 0
    white = TISSUE_CONTRAST["flair"][TISSUES["white_matter"]]
    assert abs(float(weak.images["flair"][lesion].mean()) - white) < abs(
        float(strong.images["flair"][lesion].mean()) - white
    )
    assert LESION_CONTRAST["flair"][4] > white


@pytest.mark.parametrize(
    "kwargs",
    [{"contrast": 0.0}, {"contrast": 1.5}, {"wmh_radius_mm": (5.0, 2.0)}, {"wmh_count": (0, 3)}],
)
def test_lesion_params_reject_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="LesionParams"):
        LesionParams(**kwargs)  # type: ignore[arg-type]


def test_parcellation_keeps_sides_merges_cerebellum_and_puts_lesions_on_top() -> None:
    s = STRUCTURES
    anatomy = torch.tensor(
        [
            s["left_thalamus"],
            s["right_thalamus"],
            s["left_cerebellum_cortex"],
            s["left_cerebellum_white_matter"],
            s["skull"],
            s["csf"],
            s["left_cerebral_white_matter"],
        ]
    )
    lesions = torch.tensor([0, 0, 0, 0, 0, 0, 2])
    names = [PARCELLATION_CLASSES[int(c)] for c in parcellation_map(anatomy, lesions)]
    assert names == [
        "left_thalamus",
        "right_thalamus",
        "left_cerebellum",
        "left_cerebellum",
        "background",
        "background",
        "lesion",
    ]
    assert PARCELLATION_CLASSES[LESION_CLASS] == "lesion"
    assert set(DEEP_GREY_CLASSES) <= set(PARCELLATION_CLASSES) and len(DEEP_GREY_CLASSES) == 8


def test_every_parcellation_class_appears_at_the_benchmark_size() -> None:
    brains = SyntheticBrains(6, size=32, seed=0, fov_mm=176.0, lesion=BENCHMARK_LESIONS)
    seen: set[int] = set()
    for i in range(6):
        subject = brains.generate(i)
        seen |= set(parcellation_map(subject.anatomy[0], subject.lesion_map[0]).unique().tolist())
    assert seen == set(range(len(PARCELLATION_CLASSES)))
