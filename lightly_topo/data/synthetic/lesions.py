"""Synthetic lesions: tumours (necrotic core, enhancing rim, oedema) and white-matter
hyperintensities, with the subject labels that describe them.

Which lesion a subject gets is fixed by its index (:func:`lesion_schedule`), cycling over
``none`` and every lesion type in each hemisphere, so any number of subjects has balanced
counts of ``lesion_type`` and ``hemisphere`` (to within one per class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lightly_topo.data.errors import InvalidVolumeError
from lightly_topo.data.synthetic.fields import smooth_field
from lightly_topo.data.synthetic.structures import (
    HEMISPHERE_STRUCTURES,
    LESION_LABELS,
    STRUCTURES,
    isin,
)

#: The lesion types the generator can draw.
LESION_TYPES: tuple[str, ...] = ("tumour", "wmh")


@dataclass(frozen=True)
class LesionParams:
    """Sizes and contrast of the drawn lesions.

    The defaults are the generator's original lesions: bright on T2 and FLAIR (see
    :data:`~lightly_topo.data.synthetic.contrast.LESION_CONTRAST`), white-matter
    hyperintensities of 2 to 5 mm radius. The benchmark uses larger hyperintensities and a
    lower contrast (:data:`BENCHMARK_LESIONS`), so that a lesion is not told from normal
    tissue by its intensity alone.

    Attributes:
        tumour_radius_mm: Range of the radius of the enhancing rim (the core and the oedema
            scale with it).
        wmh_radius_mm: Range of the radius of each white-matter hyperintensity.
        wmh_count: Range (inclusive) of the number of hyperintensities.
        contrast: Fraction of the lesion-to-white-matter intensity difference of
            :data:`~lightly_topo.data.synthetic.contrast.LESION_CONTRAST` that is kept, in
            (0, 1]: the mean of a lesion label in a modality is
            ``white + contrast * (lesion - white)``.
    """

    tumour_radius_mm: tuple[float, float] = (10.0, 20.0)
    wmh_radius_mm: tuple[float, float] = (2.0, 5.0)
    wmh_count: tuple[int, int] = (4, 10)
    contrast: float = 1.0

    def __post_init__(self) -> None:
        for name in ("tumour_radius_mm", "wmh_radius_mm", "wmh_count"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"LesionParams.{name}={(low, high)!r} must be 0 < low <= high")
        if not 0.0 < self.contrast <= 1.0:
            raise ValueError(f"LesionParams.contrast={self.contrast!r} must lie in (0, 1]")


#: The benchmark's lesions: hyperintensities of 7 to 12 mm radius (one to two voxels at the
#: benchmark's 5.5 mm voxels, so every lesion covers whole voxels) and 60% of the default
#: contrast. A lesion's mean then lies 10 to 16% above normal grey matter on FLAIR and T2
#: (FLAIR oedema 0.79 against grey matter 0.70 and white matter 0.55; T2 0.66 against 0.57
#: and 0.45) and between grey and white matter on T1 (0.74 against 0.73 and 0.92), within
#: the range of the bias field and noise: intensity alone confuses a lesion with cortex,
#: its position inside the white matter tells them apart. A design choice of the
#: benchmark, not a measured contrast.
BENCHMARK_LESIONS = LesionParams(wmh_radius_mm=(7.0, 12.0), wmh_count=(3, 6), contrast=0.6)


@dataclass(frozen=True)
class LesionClass:
    """The lesion of one subject: its type and hemisphere (``"none"`` for both if absent)."""

    lesion_type: str
    hemisphere: str

    @property
    def labels(self) -> dict[str, int | str]:
        """Subject labels: ``lesion`` (0/1), ``lesion_type`` and ``hemisphere``."""
        return {
            "lesion": int(self.lesion_type != "none"),
            "lesion_type": self.lesion_type,
            "hemisphere": self.hemisphere,
        }


def lesion_schedule(lesion_types: tuple[str, ...] = LESION_TYPES) -> tuple[LesionClass, ...]:
    """The cycle of lesion classes that subject ``i`` follows at position ``i % len(cycle)``.

    For each hemisphere (left, then right): one subject without lesion, then one per type.

    Args:
        lesion_types: Non-empty subset of :data:`LESION_TYPES`.

    Returns:
        The cycle.

    Raises:
        ValueError: If a type is unknown or none is given.

    >>> [(c.lesion_type, c.hemisphere) for c in lesion_schedule(("tumour",))]
    [('none', 'none'), ('tumour', 'left'), ('none', 'none'), ('tumour', 'right')]
    """
    unknown = [t for t in lesion_types if t not in LESION_TYPES]
    if unknown or not lesion_types or len(set(lesion_types)) != len(lesion_types):
        raise ValueError(
            f"lesion_types={tuple(lesion_types)!r} must be a non-empty tuple of distinct "
            f"names from {LESION_TYPES}"
        )
    cycle: list[LesionClass] = []
    for side in ("left", "right"):
        cycle.append(LesionClass("none", "none"))
        cycle.extend(LesionClass(t, side) for t in lesion_types)
    return tuple(cycle)


def _dilate(mask: Tensor, radius: int) -> Tensor:
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    out = mask[None, None].float()
    for kernel, padding in (
        ((k, 1, 1), (radius, 0, 0)),
        ((1, k, 1), (0, radius, 0)),
        ((1, 1, k), (0, 0, radius)),
    ):
        out = F.max_pool3d(out, kernel, stride=1, padding=padding)
    return out[0, 0] > 0


def _pick_voxel(candidates: Tensor, fallback: Tensor, rng: np.random.Generator) -> Tensor:
    pool = candidates if candidates.any() else fallback
    index = pool.nonzero()
    return index[int(rng.integers(len(index)))]


def _deep_voxel(mask: Tensor, reach: int, rng: np.random.Generator, tries: int = 48) -> Tensor:
    """A random voxel of ``mask`` whose surrounding cube (half-width ``reach``) is mostly
    in ``mask``: the first of up to ``tries`` random candidates with 85 % of its cube
    inside, else the best of them."""
    candidates = mask.nonzero()
    order = rng.permutation(len(candidates))[:tries]
    best, best_fraction = candidates[int(order[0])], -1.0
    for i in order:
        voxel = candidates[int(i)]
        cube = tuple(slice(max(0, int(c) - reach), int(c) + reach + 1) for c in voxel)
        fraction = float(mask[cube].float().mean())
        if fraction > best_fraction:
            best, best_fraction = voxel, fraction
        if fraction >= 0.85:
            break
    return best


def _ensure_shell(label_map: Tensor, inner: Tensor, allowed: Tensor, label: int) -> None:
    """Give ``label`` to the allowed voxels next to ``inner`` if no voxel has it yet."""
    if (label_map == label).any():
        return
    shell = _dilate(inner, 1) & allowed & (label_map == 0)
    label_map[shell] = label


def _tumour(
    anatomy: Tensor,
    grid_mm: Tensor,
    spacing: float,
    side: str,
    rng: np.random.Generator,
    generator: torch.Generator,
    params: LesionParams,
) -> tuple[Tensor, dict[str, float]]:
    s = STRUCTURES
    hemisphere = isin(anatomy, HEMISPHERE_STRUCTURES[side])
    white = anatomy == s[f"{side}_cerebral_white_matter"]
    deep = isin(
        anatomy,
        tuple(s[f"{side}_{n}"] for n in ("thalamus", "caudate", "putamen", "pallidum")),
    )
    enhancing_mm = float(rng.uniform(*params.tumour_radius_mm))
    core_mm = max(enhancing_mm * float(rng.uniform(0.45, 0.7)), 1.0 * spacing)
    enhancing_mm = max(enhancing_mm, core_mm + 1.5 * spacing)
    oedema_mm = max(enhancing_mm * float(rng.uniform(1.5, 2.2)), enhancing_mm + 2.0 * spacing)
    centre = _deep_voxel(white, max(1, round(0.6 * enhancing_mm / spacing)), rng)
    centre_mm = grid_mm[:, centre[0], centre[1], centre[2]]
    distance = torch.sqrt(((grid_mm - centre_mm[:, None, None, None]) ** 2).sum(0))
    irregular = 1.0 + 0.2 * smooth_field(1, 6, anatomy.shape[0], generator)[0].clamp(-1.5, 1.5)
    distance = distance / irregular

    label_map = torch.zeros_like(anatomy)
    oedema_allowed = white | deep
    label_map[(distance < oedema_mm) & oedema_allowed] = LESION_LABELS["oedema"]
    label_map[(distance < enhancing_mm) & hemisphere] = LESION_LABELS["enhancing"]
    core = (distance < core_mm) & hemisphere
    core[centre[0], centre[1], centre[2]] = True
    label_map[core] = LESION_LABELS["necrotic_core"]
    _ensure_shell(label_map, core, hemisphere, LESION_LABELS["enhancing"])
    _ensure_shell(label_map, label_map > 0, oedema_allowed, LESION_LABELS["oedema"])
    drawn = {
        "tumour_core_mm": core_mm,
        "tumour_enhancing_mm": enhancing_mm,
        "tumour_oedema_mm": oedema_mm,
        "tumour_x_mm": float(centre_mm[0]),
        "tumour_y_mm": float(centre_mm[1]),
        "tumour_z_mm": float(centre_mm[2]),
    }
    return label_map, drawn


def _white_matter_hyperintensities(
    anatomy: Tensor,
    grid_mm: Tensor,
    spacing: float,
    side: str,
    rng: np.random.Generator,
    params: LesionParams,
) -> tuple[Tensor, dict[str, float]]:
    s = STRUCTURES
    white = anatomy == s[f"{side}_cerebral_white_matter"]
    ventricles = isin(anatomy, (s["left_lateral_ventricle"], s["right_lateral_ventricle"]))
    periventricular = torch.zeros_like(white)
    if ventricles.any():
        reach = max(1, math.ceil(10.0 / spacing))
        found = ventricles.nonzero()
        box = tuple(
            slice(max(0, int(lo) - reach), int(hi) + reach + 1)
            for lo, hi in zip(found.min(0).values, found.max(0).values)
        )
        periventricular[box] = white[box] & _dilate(ventricles[box], reach)
    label_map = torch.zeros_like(anatomy)
    count = int(rng.integers(params.wmh_count[0], params.wmh_count[1] + 1))
    size = anatomy.shape[0]
    for _ in range(count):
        pool = periventricular if rng.random() < 0.7 else white
        centre = _pick_voxel(pool, white, rng)
        radius_mm = max(float(rng.uniform(*params.wmh_radius_mm)), 0.6 * spacing)
        reach = math.ceil(radius_mm / spacing) + 1
        window = tuple(slice(max(0, int(c) - reach), min(size, int(c) + reach + 1)) for c in centre)
        local = grid_mm[(slice(None), *window)]
        centre_mm = grid_mm[:, centre[0], centre[1], centre[2]]
        blob = ((local - centre_mm[:, None, None, None]) ** 2).sum(0) < radius_mm**2
        label_map[window][blob & white[window]] = LESION_LABELS["wm_hyperintensity"]
    return label_map, {"wmh_count": float(count)}


def draw_lesions(
    anatomy: Tensor,
    grid_mm: Tensor,
    spacing: float,
    lesion: LesionClass,
    rng: np.random.Generator,
    generator: torch.Generator,
    params: LesionParams | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Draw the lesion of one subject on its anatomy.

    Lesion voxels lie only in the cerebral structures of ``lesion.hemisphere``: tumours in
    white matter, deep grey and cortex of that side (oedema in white matter and deep grey),
    hyperintensities in its white matter (most of them periventricular).

    Args:
        anatomy: int64 (D, H, W) structure ids.
        grid_mm: World coordinates of the voxels, float32 (3, D, H, W).
        spacing: Voxel size in mm.
        lesion: The subject's lesion class.
        rng: Source of sizes and positions.
        generator: Source of the tumour's irregular outline.
        params: Lesion sizes (default :class:`LesionParams`).

    Returns:
        ``(label_map, params)``: int64 (D, H, W) lesion ids
        (:data:`~lightly_topo.data.synthetic.structures.LESION_LABELS`; all zero without
        lesion) and the drawn parameters. Every lesion class of the drawn type has at
        least one voxel.

    Raises:
        InvalidVolumeError: If the anatomy has no cerebral white matter on that side.
    """
    if lesion.lesion_type == "none":
        return torch.zeros_like(anatomy), {}
    white = anatomy == STRUCTURES[f"{lesion.hemisphere}_cerebral_white_matter"]
    if not white.any():
        raise InvalidVolumeError(
            f"the anatomy has no {lesion.hemisphere} cerebral white matter to place a "
            f"{lesion.lesion_type} lesion in (grid too small or label map without it); use a "
            f"larger size, another label map, or lesions=False"
        )
    params = params if params is not None else LesionParams()
    if lesion.lesion_type == "tumour":
        return _tumour(anatomy, grid_mm, spacing, lesion.hemisphere, rng, generator, params)
    return _white_matter_hyperintensities(anatomy, grid_mm, spacing, lesion.hemisphere, rng, params)
