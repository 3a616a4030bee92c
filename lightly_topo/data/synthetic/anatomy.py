"""Procedural whole-head anatomy: implicit shapes evaluated at template coordinates.

The template is a head in millimetres (RAS+, centred on the brain): scalp and neck, skull,
eyes, CSF, two cerebral hemispheres with a folded cortical ribbon over white matter, lateral
ventricles, third and fourth ventricles, deep grey nuclei (thalamus medial to pallidum and
putamen, caudate along the lateral wall of the lateral ventricle), hippocampus and
amygdala, ventral deep grey, cerebellum (cortex over white matter) and brain stem. Every
subject draws its own sizes, positions within a few millimetres, ventricle and CSF widths
(one "atrophy" value drives both), cortical thickness and folding pattern; the spatial
relations between structures hold in every subject by construction.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lightly_topo.data.synthetic.fields import smooth_field
from lightly_topo.data.synthetic.structures import STRUCTURES

_SIDES: tuple[tuple[str, float], ...] = (("left", -1.0), ("right", 1.0))

# Nominal (centre, radii) in mm of the bilateral ellipsoids, for the right side (x > 0).
_DEEP: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "hippocampus_amygdala": ((27.0, -22.0, -14.0), (6.0, 17.0, 6.5)),
    "ventral_deep_grey": ((11.0, -10.0, -9.0), (6.0, 8.0, 5.0)),
    "putamen": ((25.0, 4.0, 2.0), (5.5, 15.0, 10.0)),
    "pallidum": ((19.5, 1.0, 0.0), (3.5, 8.0, 6.0)),
    "thalamus": ((10.0, -14.0, 5.0), (8.0, 13.0, 9.0)),
}


def _coords(q: Tensor, centre: np.ndarray, radii: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    return (
        (q[0] - float(centre[0])) / float(radii[0]),
        (q[1] - float(centre[1])) / float(radii[1]),
        (q[2] - float(centre[2])) / float(radii[2]),
    )


def _inside(q: Tensor, centre: np.ndarray, radii: np.ndarray) -> Tensor:
    u, v, w = _coords(q, centre, radii)
    return u * u + v * v + w * w < 1.0


def _box(
    q: Tensor, low: tuple[float, float, float], high: tuple[float, float, float]
) -> tuple[Tensor, Tensor]:
    """Flat indices and coordinates (3, N) of the points of ``q`` inside an axis box."""
    inside = torch.ones(q.shape[1:], dtype=torch.bool)
    for axis in range(3):
        inside &= (q[axis] > low[axis]) & (q[axis] < high[axis])
    index = inside.view(-1).nonzero().squeeze(1)
    return index, q.reshape(3, -1)[:, index]


def _ellipsoid_sdf(q: Tensor, centre: np.ndarray, radii: np.ndarray) -> Tensor:
    """Approximate signed distance (mm) to an ellipsoid, accurate near its surface."""
    u, v, w = _coords(q, centre, radii)
    k0 = torch.sqrt(u * u + v * v + w * w)
    k1 = torch.sqrt(
        (u / float(radii[0])) ** 2 + (v / float(radii[1])) ** 2 + (w / float(radii[2])) ** 2
    )
    near = k0 * (k0 - 1.0) / k1.clamp_min(1e-6)
    deep = (k0 - 1.0) * float(np.min(radii))
    return torch.where(k0 < 0.5, deep, near)


def procedural_anatomy(
    q: Tensor, rng: np.random.Generator, generator: torch.Generator, fov_mm: float
) -> tuple[Tensor, dict[str, float]]:
    """Draw one subject's anatomy at the given template coordinates.

    Args:
        q: Template coordinates (mm) of every output voxel, float32 (3, D, H, W), e.g. from
            :func:`~lightly_topo.data.synthetic.deform.template_coordinates`.
        rng: Source of the per-subject shape parameters.
        generator: Source of the folding fields.
        fov_mm: Side of the field of view (sets the scale of the folding fields).

    Returns:
        ``(anatomy, params)``: int64 (D, H, W) structure ids (see
        :data:`~lightly_topo.data.synthetic.structures.STRUCTURES`) and the drawn shape
        parameters.

    >>> from lightly_topo.data.synthetic.deform import output_grid_mm
    >>> q = output_grid_mm(24, 220.0)
    >>> anatomy, _ = procedural_anatomy(q, np.random.default_rng(0), torch.Generator(), 220.0)
    >>> anatomy.shape, int(anatomy.max()) <= max(STRUCTURES.values())
    (torch.Size([24, 24, 24]), True)
    """
    s = STRUCTURES
    atrophy = float(rng.uniform(0.0, 1.0))
    ventricle = 1.0 + 0.6 * atrophy
    csf_margin = 2.5 + 2.5 * atrophy
    cortex = float(rng.uniform(2.2, 3.0))
    skull = float(rng.uniform(4.5, 7.5))
    scalp = float(rng.uniform(4.0, 8.0))
    fissure = 1.6 + 0.6 * atrophy

    def jitter(
        centre: tuple[float, ...], radii: tuple[float, ...], shift: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(centre) + np.clip(rng.normal(0.0, shift, 3), -2 * shift, 2 * shift)
        r = np.asarray(radii) * rng.uniform(0.9, 1.1, 3)
        return c, r

    # Folding fields (surface bumps, ribbon thickness, sulci, folia): random per subject,
    # so they are drawn on the output grid directly; ~10 mm between control points.
    control_points = max(2, round(fov_mm / 10.0))
    bump, fold, sulcus, folia = smooth_field(4, control_points, q.shape[1], generator)

    cerebrum_c, cerebrum_r = jitter((0.0, 2.0, 10.0), (63.0, 81.0, 51.0), 1.5)
    cerebrum_sdf = _ellipsoid_sdf(q, cerebrum_c, cerebrum_r)

    # Cerebellum and brain stem, evaluated only in boxes that hold them with a margin wider
    # than CSF, skull and scalp together (their distance is +inf outside).
    index, qb = _box(q, (-80.0, -115.0, -80.0), (80.0, 0.0, 20.0))
    cerebellum_b = torch.full_like(qb[0], float("inf"))
    cerebellum_wm_b = torch.zeros_like(qb[0], dtype=torch.bool)
    for _, side in _SIDES:
        c, r = jitter((22.0 * side, -57.0, -30.0), (27.0, 26.0, 20.0))
        cerebellum_b = torch.minimum(cerebellum_b, _ellipsoid_sdf(qb, c, r))
        c, r = jitter((16.0 * side, -52.0, -27.0), (10.0, 11.0, 8.0))
        u, v, w = _coords(qb, c, r)
        cerebellum_wm_b |= u * u + v * v + w * w < 1.0 + 0.35 * folia.view(-1)[index]
    vermis_c, vermis_r = jitter((0.0, -58.0, -27.0), (12.0, 25.0, 20.0))
    cerebellum_b = torch.minimum(cerebellum_b, _ellipsoid_sdf(qb, vermis_c, vermis_r))
    cerebellum_sdf = torch.full_like(q[0], float("inf"))
    cerebellum_sdf.view(-1)[index] = cerebellum_b
    cerebellum_wm = torch.zeros_like(q[0], dtype=torch.bool)
    cerebellum_wm.view(-1)[index] = cerebellum_wm_b

    index, qb = _box(q, (-40.0, -60.0, -1000.0), (40.0, 20.0, 25.0))
    stem_c, stem_r = jitter((0.0, -20.0, -32.0), (12.0, 12.0, 30.0))
    stem_b = _ellipsoid_sdf(qb, stem_c, stem_r)
    cord = torch.sqrt(qb[0] ** 2 + (qb[1] - float(stem_c[1]) + 4.0) ** 2) - 6.0
    stem_b = torch.where(qb[2] < -50.0, torch.minimum(stem_b, cord), stem_b)
    stem_sdf = torch.full_like(q[0], float("inf"))
    stem_sdf.view(-1)[index] = stem_b

    cavity_sdf = torch.minimum(torch.minimum(cerebrum_sdf, cerebellum_sdf), stem_sdf) - csf_margin

    anatomy = torch.zeros(q.shape[1:], dtype=torch.int64)
    # Soft tissue: a shell around the skull, the neck and the face.
    head = cavity_sdf < skull + scalp
    head |= ((q[0] / 50.0) ** 2 + ((q[1] + 12.0) / 52.0) ** 2 < 1.0) & (q[2] < -40.0)
    head |= _inside(q, np.array([0.0, 40.0, -48.0]), np.array([52.0, 48.0, 44.0]))
    anatomy[head] = s["soft_tissue"]
    for _, side in _SIDES:
        c, r = jitter((32.0 * side, 62.0, -34.0), (11.0, 11.0, 11.0), 0.8)
        anatomy[_inside(q, c, r)] = s["eye"]
    anatomy[cavity_sdf < skull] = s["skull"]
    anatomy[cavity_sdf < 0] = s["csf"]

    # Cerebrum: hemispheres split by the midline, cortical ribbon over white matter.
    outer = cerebrum_sdf + 2.5 * bump
    behind_tentorium = cerebellum_sdf < 4.0 + 0.5 * csf_margin
    in_fissure = (q[0].abs() < fissure) & ~((q[1].abs() < 38.0) & (q[2] < 24.0))
    cerebrum = (outer < 0) & ~behind_tentorium & ~in_fissure & (stem_sdf > 2.0)
    fissure_depth = torch.where(
        (q[1].abs() < 38.0) & (q[2] < 24.0),
        torch.full_like(q[0], float("inf")),
        q[0].abs() - fissure,
    )
    depth = torch.minimum(torch.minimum(-outer, fissure_depth), cerebellum_sdf - 4.0)
    # Sulci: CSF sheets along the zero level set of a smooth random field, reaching
    # 10-20 mm deep, lined with cortex on both sides; cortex elsewhere is a ribbon whose
    # thickness varies with another field.
    sheet_mm = 7.0 * sulcus.abs()
    sulcal_depth = 15.0 + 5.0 * fold.clamp(-1.0, 1.0)
    thickness = cortex * (1.4 + 0.8 * torch.relu(fold))
    in_sulcus = depth < sulcal_depth
    sulcal_csf = in_sulcus & (sheet_mm < 0.8 + 0.4 * atrophy)
    is_cortex = (
        cerebrum
        & ~sulcal_csf
        & (
            (depth < thickness)
            | ((depth < sulcal_depth + thickness) & (sheet_mm < 0.8 + thickness))
        )
    )
    is_wm = cerebrum & ~sulcal_csf & ~is_cortex
    left = q[0] < 0
    anatomy[is_cortex & left] = s["left_cerebral_cortex"]
    anatomy[is_cortex & ~left] = s["right_cerebral_cortex"]
    anatomy[is_wm & left] = s["left_cerebral_white_matter"]
    anatomy[is_wm & ~left] = s["right_cerebral_white_matter"]

    # Cerebellum and brain stem.
    cerebellum = (cerebellum_sdf < 0) & (stem_sdf > 0)
    for name, side in _SIDES:
        half = (q[0] < 0) if side < 0 else (q[0] >= 0)
        anatomy[cerebellum & half] = s[f"{name}_cerebellum_cortex"]
        anatomy[cerebellum & half & cerebellum_wm] = s[f"{name}_cerebellum_white_matter"]
    anatomy[stem_sdf < 0] = s["brain_stem"]

    # Deep grey nuclei, caudate along the ventricle, then the ventricles themselves; these
    # are evaluated only inside a box around the centre of the brain.
    flat = anatomy.view(-1)
    index, qb = _box(q, (-50.0, -55.0, -45.0), (50.0, 45.0, 40.0))
    for name, side in _SIDES:
        for structure, (centre, radii) in _DEEP.items():
            c, r = jitter((centre[0] * side, centre[1], centre[2]), radii)
            flat[index[_inside(qb, c, r)]] = s[f"{name}_{structure}"]
        c, r = jitter(((12.0 + 3.5 * ventricle) * side, 12.0, 12.0), (5.0, 15.0, 9.0))
        flat[index[_inside(qb, c, r)]] = s[f"{name}_caudate"]
    for name, side in _SIDES:
        shift = rng.normal(0.0, 0.8, 3).clip(-1.6, 1.6)
        dy = (qb[1] + 4.0 - float(shift[1])) / 36.0
        xc = side * (8.0 - 3.0 * dy + 5.0 * dy * dy) + float(shift[0])
        zc = 16.0 - 8.0 * dy * dy + float(shift[2])
        lateral = ((qb[0] - xc) / (5.0 * ventricle)) ** 2 + ((qb[2] - zc) / (6.0 * ventricle)) ** 2
        flat[index[lateral + dy * dy < 1.0]] = s[f"{name}_lateral_ventricle"]
    c, r = jitter((0.0, -8.0, 2.0), (1.8 + 0.6 * ventricle, 14.0, 9.0), 0.5)
    flat[index[_inside(qb, c, r)]] = s["third_fourth_ventricles"]
    c, r = jitter((0.0, -35.0, -30.0), (3.5, 4.0, 7.0), 0.5)
    flat[index[_inside(qb, c, r)]] = s["third_fourth_ventricles"]

    params = {
        "atrophy": atrophy,
        "ventricle_scale": ventricle,
        "csf_margin_mm": csf_margin,
        "cortex_mm": cortex,
        "skull_mm": skull,
        "scalp_mm": scalp,
    }
    return anatomy, params
