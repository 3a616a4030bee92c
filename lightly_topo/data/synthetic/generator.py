"""Generation of one synthetic subject: anatomy, deformation, lesions and contrasts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from lightly_topo.data.modalities import MODALITIES
from lightly_topo.data.synthetic.anatomy import procedural_anatomy
from lightly_topo.data.synthetic.contrast import AcquisitionParams, render_modality
from lightly_topo.data.synthetic.deform import (
    DeformationParams,
    output_grid_mm,
    template_coordinates,
    voxel_affine,
)
from lightly_topo.data.synthetic.label_maps import load_label_map, sample_label_map
from lightly_topo.data.synthetic.lesions import (
    LESION_TYPES,
    LesionParams,
    draw_lesions,
    lesion_schedule,
)
from lightly_topo.data.synthetic.seeding import item_generators
from lightly_topo.data.synthetic.structures import (
    INTRACRANIAL_STRUCTURES,
    TISSUES,
    isin,
    tissue_of,
)
from lightly_topo.data.types import LabelValue

_LESION_STREAM = 1
_MODALITY_STREAM = 2
_BRAIN_TISSUES = (TISSUES["grey_matter"], TISSUES["white_matter"], TISSUES["deep_grey_matter"])


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that decides the subjects of a synthetic dataset (besides the seed).

    Attributes:
        size: Voxels per axis of the cubic output grid.
        modalities: Canonical modality names to synthesise.
        lesions: Whether subjects follow the lesion schedule (otherwise none has lesions).
        lesion_types: The lesion types of the schedule.
        label_maps: Real label maps to draw the anatomy from, or ``None`` for the
            procedural anatomy.
        fov_mm: Side of the cubic field of view in mm (voxel size ``fov_mm / size``).
        skull_strip: Zero the images outside the intracranial structures (like BraTS).
        deformation: Strength of the random affine and nonlinear deformation.
        acquisition: Ranges of the acquisition effects.
        lesion: Sizes and contrast of the lesions.
    """

    size: int = 64
    modalities: tuple[str, ...] = ("t1", "t2", "pd", "flair")
    lesions: bool = True
    lesion_types: tuple[str, ...] = LESION_TYPES
    label_maps: tuple[Path, ...] | None = None
    fov_mm: float = 220.0
    skull_strip: bool = False
    deformation: DeformationParams = field(default_factory=DeformationParams)
    acquisition: AcquisitionParams = field(default_factory=AcquisitionParams)
    lesion: LesionParams = field(default_factory=LesionParams)


@dataclass
class SyntheticSubject:
    """One generated subject with everything that made it.

    Attributes:
        subject_id: Identifier, e.g. ``"synth-0007"``.
        index: Index in the dataset.
        images: Raw contrasts (about [0, 1]) per modality, float32 (1, S, S, S).
        anatomy: int64 (1, S, S, S) structure ids (:data:`STRUCTURES`).
        tissue: int64 (1, S, S, S) tissue ids (:data:`TISSUES`).
        lesion_map: int64 (1, S, S, S) lesion ids (:data:`LESION_LABELS`), zero where
            there is no lesion.
        foreground: bool (1, S, S, S): the head (or the intracranial volume when
            skull-stripped); the images are z-scored over it.
        labels: Subject labels: ``lesion``, ``lesion_type``, ``hemisphere`` and
            ``brain_volume_ml``.
        affine: float64 (4, 4) voxel-to-world (RAS+, mm).
        source: ``"procedural"`` or the label-map file the anatomy comes from.
        params: The drawn random parameters (deformation, shape, lesion).
    """

    subject_id: str
    index: int
    images: dict[str, Tensor]
    anatomy: Tensor
    tissue: Tensor
    lesion_map: Tensor
    foreground: Tensor
    labels: dict[str, LabelValue]
    affine: Tensor
    source: str
    params: dict[str, float]


def generate_subject(
    config: SyntheticConfig, seed: int, index: int, subject_id: str
) -> SyntheticSubject:
    """Generate subject ``index``; the result depends only on ``(config, seed, index)``.

    The anatomy and deformation, the lesion and each modality draw from separate random
    streams: a subject's anatomy does not depend on ``lesions`` or ``modalities``, and its
    image of one modality does not depend on which other modalities are requested.

    Args:
        config: The dataset's configuration.
        seed: The dataset's seed.
        index: The subject's index.
        subject_id: The identifier to give it.

    Returns:
        The :class:`SyntheticSubject`.
    """
    rng, generator = item_generators(seed, index)
    spacing = config.fov_mm / config.size
    grid = output_grid_mm(config.size, config.fov_mm)
    q, params = template_coordinates(grid, config.deformation, rng, generator)
    if config.label_maps:
        path = config.label_maps[int(rng.integers(len(config.label_maps)))]
        anatomy = sample_label_map(load_label_map(path), q)
        source = str(path)
    else:
        anatomy, shape = procedural_anatomy(q, rng, generator, config.fov_mm)
        params.update(shape)
        source = "procedural"
    del q
    tissue = tissue_of(anatomy)

    schedule = lesion_schedule(config.lesion_types)
    lesion = schedule[index % len(schedule)] if config.lesions else schedule[0]
    rng, generator = item_generators(seed, index, _LESION_STREAM)
    lesion_map, drawn = draw_lesions(anatomy, grid, spacing, lesion, rng, generator, config.lesion)
    params.update(drawn)

    if config.skull_strip:
        foreground = isin(anatomy, INTRACRANIAL_STRUCTURES)
    else:
        foreground = anatomy > 0
    images = {}
    for modality in config.modalities:
        # One stream per modality: a subject's T2 is the same whichever others are asked for.
        rng, generator = item_generators(seed, index, _MODALITY_STREAM + MODALITIES.index(modality))
        image = render_modality(
            tissue,
            lesion_map,
            modality,
            config.acquisition,
            rng,
            generator,
            config.lesion.contrast,
        )
        if config.skull_strip:
            image = image * foreground
        images[modality] = image[None].contiguous()

    labels: dict[str, LabelValue] = dict(lesion.labels)
    brain_voxels = int(isin(tissue, _BRAIN_TISSUES).sum())
    labels["brain_volume_ml"] = round(brain_voxels * spacing**3 / 1000.0, 3)
    return SyntheticSubject(
        subject_id=subject_id,
        index=index,
        images=images,
        anatomy=anatomy[None],
        tissue=tissue[None],
        lesion_map=lesion_map[None],
        foreground=foreground[None],
        labels=labels,
        affine=voxel_affine(config.size, config.fov_mm),
        source=source,
        params=params,
    )
