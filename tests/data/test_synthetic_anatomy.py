"""Anatomy relations, tissue contrasts and lesions in every subject of a small synthetic set,
procedural and seeded by the real SynthSeg label maps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lightly_topo.data.synthetic import (
    LESION_LABELS,
    STRUCTURES,
    TISSUES,
    SyntheticBrains,
    SyntheticSubject,
)
from lightly_topo.data.synthetic.structures import HEMISPHERE_STRUCTURES

SIZE = 64
MODALITIES = ("t1", "t1ce", "t2", "pd", "flair")
BILATERAL = (
    "cerebral_cortex",
    "cerebral_white_matter",
    "lateral_ventricle",
    "thalamus",
    "caudate",
    "putamen",
    "pallidum",
    "hippocampus_amygdala",
    "cerebellum_cortex",
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The generator is built for one thread per process (DataLoader workers); several
    threads on small volumes only add synchronisation cost, badly so on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def procedural() -> list[SyntheticSubject]:
    dataset = SyntheticBrains(8, size=SIZE, modalities=MODALITIES, seed=11)
    return [dataset.generate(i) for i in range(len(dataset))]


@pytest.fixture(scope="module")
def seeded(shared_data: Path) -> list[SyntheticSubject]:
    folder = shared_data / "synthseg_training_label_maps"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    assert len(SyntheticBrains(2, label_maps=folder).config.label_maps or ()) == 20
    one_map = [folder / "training_seg_03.nii.gz"]
    dataset = SyntheticBrains(2, size=SIZE, modalities=MODALITIES, label_maps=one_map, seed=5)
    return [dataset.generate(i) for i in range(len(dataset))]


def _centroids(anatomy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per structure id: voxel count and summed voxel coordinates (D=x, H=y, W=z)."""
    n = len(STRUCTURES)
    flat = anatomy.flatten()
    axes = torch.meshgrid(
        *[torch.arange(s, dtype=torch.float64) for s in anatomy.shape], indexing="ij"
    )
    counts = torch.bincount(flat, minlength=n).double()
    sums = torch.stack([torch.bincount(flat, weights=a.flatten(), minlength=n) for a in axes], 1)
    return counts, sums


def _centroid(stats: tuple[torch.Tensor, torch.Tensor], *names: str) -> torch.Tensor:
    """Centroid (voxels along D=x right, H=y anterior, W=z superior) of some structures."""
    ids = [STRUCTURES[name] for name in names]
    count = stats[0][ids].sum()
    assert count > 0, f"no voxel of {names}"
    return stats[1][ids].sum(0) / count


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    k = 2 * radius + 1
    return F.max_pool3d(mask[None, None].float(), k, stride=1, padding=radius)[0, 0] > 0


def _erode_faces(mask: torch.Tensor) -> torch.Tensor:
    """Voxels of ``mask`` whose 6 face neighbours are in ``mask`` too."""
    padded = F.pad(mask[None, None].float(), (1, 1, 1, 1, 1, 1))[0, 0] > 0
    core = mask.clone()
    for axis in range(3):
        for shift in (0, 2):
            index = [slice(1, -1)] * 3
            index[axis] = slice(shift, shift + mask.shape[axis])
            core &= padded[tuple(index)]
    return core


def _erode(mask: torch.Tensor) -> torch.Tensor:
    """The purest voxels of ``mask``: those whose 3x3x3 neighbourhood is in ``mask`` where
    at least 10 are, else those whose 6 face neighbours are."""
    core = ~_dilate(~mask, 1)
    return core if int(core.sum()) >= 10 else _erode_faces(mask)


def _check_relations(subject: SyntheticSubject) -> None:
    a = subject.anatomy[0]
    stats = _centroids(a)
    for side in ("left", "right"):
        thalamus = _centroid(stats, f"{side}_thalamus")
        pallidum = _centroid(stats, f"{side}_pallidum")
        putamen = _centroid(stats, f"{side}_putamen")
        # Medial = towards the midline: larger x on the left, smaller x on the right.
        sign = 1.0 if side == "left" else -1.0
        assert sign * (thalamus[0] - putamen[0]) > 0, (subject.subject_id, side)
        assert sign * (thalamus[0] - pallidum[0]) > 0, (subject.subject_id, side)
        assert sign * (pallidum[0] - putamen[0]) > 0, (subject.subject_id, side)
        caudate = a == STRUCTURES[f"{side}_caudate"]
        ventricle = a == STRUCTURES[f"{side}_lateral_ventricle"]
        assert (_dilate(caudate, 1) & ventricle).any(), (subject.subject_id, side)
        centre = _centroid(stats, f"{side}_caudate")
        nearest = (ventricle.nonzero().double() - centre).norm(dim=1).min()
        nearest_mm = float(nearest * subject.affine[0, 0])
        assert nearest_mm < 15.0, (subject.subject_id, side, nearest_mm)
    for name in BILATERAL:
        left = _centroid(stats, f"left_{name}")
        right = _centroid(stats, f"right_{name}")
        assert left[0] < right[0], (subject.subject_id, name)
    cerebrum = _centroid(
        stats,
        "left_cerebral_cortex",
        "right_cerebral_cortex",
        "left_cerebral_white_matter",
        "right_cerebral_white_matter",
    )
    cerebellum = _centroid(stats, "left_cerebellum_cortex", "right_cerebellum_cortex")
    stem = _centroid(stats, "brain_stem")
    thalami = _centroid(stats, "left_thalamus", "right_thalamus")
    assert cerebellum[2] < cerebrum[2] and cerebellum[1] < cerebrum[1]  # inferior, posterior
    assert stem[2] < cerebrum[2] and stem[2] < thalami[2]  # below
    assert stem[1] > cerebellum[1]  # in front of the cerebellum


def _tissue_means(subject: SyntheticSubject) -> dict[str, dict[str, float]]:
    """Per modality, the mean raw intensity per tissue over the voxels whose face
    neighbours are all that tissue (little partial volume) and free of lesion."""
    tissue = subject.tissue[0]
    clean = subject.lesion_map[0] == 0
    cores = {}
    for name in ("csf", "grey_matter", "white_matter"):
        cores[name] = _erode((tissue == TISSUES[name]) & clean)
        assert cores[name].sum() >= 10, (subject.subject_id, name)
    return {
        m: {name: float(subject.images[m][0][core].mean()) for name, core in cores.items()}
        for m in MODALITIES
    }


def _check_contrast(subject: SyntheticSubject) -> None:
    sid = subject.subject_id
    means = _tissue_means(subject)
    t1, t1ce, t2, pd, flair = (means[m] for m in ("t1", "t1ce", "t2", "pd", "flair"))
    assert t1["white_matter"] > t1["grey_matter"] > t1["csf"], (sid, t1)
    assert t1ce["white_matter"] > t1ce["grey_matter"] > t1ce["csf"], (sid, t1ce)
    assert t2["csf"] > t2["grey_matter"] > t2["white_matter"], (sid, t2)
    assert pd["grey_matter"] > pd["white_matter"] and pd["csf"] > pd["white_matter"], (sid, pd)
    assert abs(pd["grey_matter"] - pd["csf"]) < 0.15, (sid, pd)  # nearly equal, as measured
    assert flair["grey_matter"] > flair["white_matter"] > flair["csf"], (sid, flair)
    assert flair["csf"] < 0.5 * flair["white_matter"], (sid, flair)  # CSF nulled


def test_anatomy_relations_in_every_procedural_subject(procedural: list[SyntheticSubject]) -> None:
    for subject in procedural:
        _check_relations(subject)


def test_tissue_contrast_order_in_every_procedural_subject(
    procedural: list[SyntheticSubject],
) -> None:
    for subject in procedural:
        _check_contrast(subject)


def test_shapes_vary_across_subjects(procedural: list[SyntheticSubject]) -> None:
    volumes = [float(s.labels["brain_volume_ml"]) for s in procedural]
    assert 700.0 < min(volumes) and max(volumes) < 1700.0
    assert max(volumes) - min(volumes) > 50.0
    ventricles = [
        int((s.anatomy == STRUCTURES["left_lateral_ventricle"]).sum()) for s in procedural
    ]
    assert len(set(ventricles)) == len(ventricles)


def test_lesions_match_subject_labels(procedural: list[SyntheticSubject]) -> None:
    tumour_ids = {LESION_LABELS[k] for k in ("necrotic_core", "oedema", "enhancing")}
    seen = set()
    for subject in procedural:
        labels = subject.labels
        lesion = subject.lesion_map[0]
        present = set(lesion.unique().tolist()) - {0}
        seen.add((labels["lesion_type"], labels["hemisphere"]))
        assert labels["lesion"] == int(bool(present)), subject.subject_id
        if labels["lesion_type"] == "tumour":
            assert present == tumour_ids, (subject.subject_id, present)
        elif labels["lesion_type"] == "wmh":
            assert present == {LESION_LABELS["wm_hyperintensity"]}, subject.subject_id
        else:
            assert labels["hemisphere"] == "none" and not present
            continue
        side = str(labels["hemisphere"])
        anatomy = subject.anatomy[0][lesion > 0]
        allowed = torch.tensor(HEMISPHERE_STRUCTURES[side])
        assert torch.isin(anatomy, allowed).all(), subject.subject_id
        x_mm = (lesion > 0).nonzero()[:, 0].double().mean() * subject.affine[0, 0] + subject.affine[
            0, 3
        ]
        assert (x_mm < 0) if side == "left" else (x_mm > 0), (subject.subject_id, float(x_mm))
    assert seen == {
        ("none", "none"),
        ("tumour", "left"),
        ("tumour", "right"),
        ("wmh", "left"),
        ("wmh", "right"),
    }


def test_lesion_contrasts(procedural: list[SyntheticSubject]) -> None:
    for subject in procedural:
        lesion = subject.lesion_map[0]
        white = _erode((subject.tissue[0] == TISSUES["white_matter"]) & (lesion == 0))
        img = {m: subject.images[m][0] for m in MODALITIES}
        kind = subject.labels["lesion_type"]
        if kind == "tumour":
            rim = lesion == LESION_LABELS["enhancing"]
            oedema = lesion == LESION_LABELS["oedema"]
            # The rim enhances: much brighter on T1ce than on T1, unlike normal white matter.
            rim_gain = float(img["t1ce"][rim].mean() - img["t1"][rim].mean())
            wm_gain = float(img["t1ce"][white].mean() - img["t1"][white].mean())
            assert rim_gain > wm_gain + 0.05, (subject.subject_id, rim_gain, wm_gain)
            for m in ("t2", "flair"):
                assert img[m][oedema].mean() > img[m][white].mean() + 0.1, (subject.subject_id, m)
        elif kind == "wmh":
            wmh = lesion == LESION_LABELS["wm_hyperintensity"]
            assert img["flair"][wmh].mean() > img["flair"][white].mean() + 0.05, subject.subject_id


def test_synthseg_seeded_subjects(seeded: list[SyntheticSubject]) -> None:
    assert all(s.source.endswith("training_seg_03.nii.gz") for s in seeded)
    assert not torch.equal(seeded[0].anatomy, seeded[1].anatomy)  # deformed differently
    for subject in seeded:
        present = set(subject.anatomy.unique().tolist())
        assert set(STRUCTURES.values()) - present <= {STRUCTURES["eye"]}, subject.subject_id
        _check_relations(subject)
        _check_contrast(subject)
    assert seeded[1].labels["lesion_type"] == "tumour"
    assert (seeded[1].lesion_map == LESION_LABELS["enhancing"]).any()
