"""``SyntheticBrains``: a map-style dataset of synthetic co-registered multi-contrast brains."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from lightly_topo.data.errors import UnknownModalityError
from lightly_topo.data.modalities import normalize_modality
from lightly_topo.data.preprocess import zscore_foreground
from lightly_topo.data.synthetic.contrast import SYNTHETIC_MODALITIES, AcquisitionParams
from lightly_topo.data.synthetic.deform import DeformationParams
from lightly_topo.data.synthetic.generator import (
    SyntheticConfig,
    SyntheticSubject,
    generate_subject,
)
from lightly_topo.data.synthetic.label_maps import list_label_maps
from lightly_topo.data.synthetic.lesions import LESION_TYPES, LesionParams, lesion_schedule
from lightly_topo.data.types import LabelValue, VolumeItem


class SyntheticBrains(Dataset):
    """Synthetic co-registered multi-contrast brain MRI subjects, generated on the fly.

    Every subject shares the same anatomy *relations* (thalamus medial to pallidum and
    putamen, caudate along the lateral ventricles, cerebellum inferior-posterior to the
    cerebrum, brain stem below, two hemispheres) while shapes vary: a random affine and
    smooth nonlinear deformation, per-structure sizes and positions, ventricle and CSF
    widths, cortical folding. The anatomy is procedural, or drawn from real label maps
    (SynthSeg style) when ``label_maps`` is given. Each modality has its own tissue
    contrast (measured template means, jittered per subject), partial-volume blur, bias
    field and Rician noise. Lesions follow a fixed cycle over subjects (see
    :func:`~lightly_topo.data.synthetic.lesions.lesion_schedule`): none, then each type, in
    the left and then the right hemisphere, so label counts are balanced for any length.

    Item ``i`` depends only on ``(seed, i)`` and the arguments, never on access order or
    the global random state.

    Items are :class:`~lightly_topo.data.types.VolumeItem` dicts, like those of
    :class:`~lightly_topo.data.MultiModalVolumeDataset`:

    * ``images``: ``{name: float32 (1, S, S, S)}``, z-scored over the head (over the
      intracranial volume if ``skull_strip``), or raw contrasts in about [0, 1] if
      ``normalize=False``;
    * ``label_map``: int64 (1, S, S, S) lesions: 0 background, 1 necrotic core, 2 oedema,
      3 enhancing tumour, 4 white-matter hyperintensity (``None`` if ``lesions=False``);
    * ``labels``: ``lesion`` (0/1), ``lesion_type`` (``"none"``, ``"tumour"``, ``"wmh"``),
      ``hemisphere`` (``"none"``, ``"left"``, ``"right"``) and ``brain_volume_ml``;
    * ``affine``: float64 (4, 4), RAS+, voxel size ``fov_mm / size`` mm.

    Reference: anatomy seeded by label maps follows Billot et al., "SynthSeg: Segmentation
    of brain MRI scans of any contrast and resolution without retraining", Medical Image
    Analysis 86:102789 (2023).

    Args:
        n_subjects: Number of subjects (at least 1).
        size: Voxels per axis of the cubic grid (at least 16).
        modalities: Modality names (any alias, e.g. ``"T1w"``); canonical names among
            ``t1, t1ce, t2, flair, pd`` are synthesised, in the given order.
        lesions: Whether subjects get lesions (following the schedule).
        label_maps: A folder of NIfTI label maps with FreeSurfer ids, or a list of files;
            ``None`` uses the procedural anatomy.
        seed: Seed of the whole dataset (non-negative).
        normalize: Z-score every image over the foreground (default) or return the raw
            contrasts.
        transform: Callable applied to every item.
        lesion_types: Lesion types of the schedule, a subset of ``("tumour", "wmh")``.
        fov_mm: Side of the field of view in mm.
        skull_strip: Zero the images outside the intracranial volume (BraTS-like).
        deformation: Strength of the per-subject deformation.
        acquisition: Ranges of the acquisition effects (jitter, blur, bias, noise).
        lesion: Sizes and contrast of the lesions (default :class:`LesionParams`; the
            benchmark's: :data:`~lightly_topo.data.synthetic.lesions.BENCHMARK_LESIONS`).
        id_prefix: Subject ids are ``f"{id_prefix}-{index:04d}"``.

    Raises:
        UnknownModalityError: If a modality cannot be synthesised.
        ValueError: If a numeric argument is out of range or a modality is repeated.
        MissingFileError: If ``label_maps`` names a file or folder that does not exist.
        EmptyDatasetError: If ``label_maps`` holds no NIfTI file.

    >>> dataset = SyntheticBrains(6, size=32, modalities=("T1w", "flair"))
    >>> item = dataset[1]
    >>> item["subject_id"], item["modality_names"], tuple(item["images"]["t1"].shape)
    ('synth-0001', ('t1', 'flair'), (1, 32, 32, 32))
    >>> item["labels"]["lesion_type"], item["labels"]["hemisphere"]
    ('tumour', 'left')
    """

    def __init__(
        self,
        n_subjects: int,
        size: int = 64,
        modalities: Sequence[str] = ("t1", "t2", "pd", "flair"),
        lesions: bool = True,
        label_maps: str | Path | Sequence[str | Path] | None = None,
        seed: int = 0,
        normalize: bool = True,
        transform: Callable[[VolumeItem], Any] | None = None,
        lesion_types: Sequence[str] = LESION_TYPES,
        fov_mm: float = 220.0,
        skull_strip: bool = False,
        deformation: DeformationParams | None = None,
        acquisition: AcquisitionParams | None = None,
        id_prefix: str = "synth",
        lesion: LesionParams | None = None,
    ) -> None:
        if isinstance(n_subjects, bool) or not isinstance(n_subjects, int) or n_subjects < 1:
            raise ValueError(f"n_subjects={n_subjects!r} must be a positive integer")
        if isinstance(size, bool) or not isinstance(size, int) or size < 16:
            raise ValueError(f"size={size!r} must be an integer of at least 16 (voxels per axis)")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} must be a non-negative integer")
        if not fov_mm > 0:
            raise ValueError(f"fov_mm={fov_mm!r} must be positive (millimetres)")
        if isinstance(modalities, str):
            modalities = (modalities,)
        names = tuple(
            normalize_modality(m, source="SyntheticBrains(modalities=...)") for m in modalities
        )
        if not names:
            raise ValueError("modalities must name at least one modality")
        if len(set(names)) != len(names):
            raise ValueError(f"modalities={tuple(modalities)!r} name a modality twice ({names})")
        unsupported = [m for m in names if m not in SYNTHETIC_MODALITIES]
        if unsupported:
            raise UnknownModalityError(
                f"SyntheticBrains cannot synthesise {unsupported}; it has contrast models for "
                f"{', '.join(SYNTHETIC_MODALITIES)}"
            )
        lesion_schedule(tuple(lesion_types))
        files = None if label_maps is None else tuple(list_label_maps(label_maps))
        self.n_subjects = n_subjects
        self.seed = seed
        self.normalize = normalize
        self.transform = transform
        self.id_prefix = id_prefix
        self.config = SyntheticConfig(
            size=size,
            modalities=names,
            lesions=lesions,
            lesion_types=tuple(lesion_types),
            label_maps=files,
            fov_mm=float(fov_mm),
            skull_strip=skull_strip,
            deformation=deformation if deformation is not None else DeformationParams(),
            acquisition=acquisition if acquisition is not None else AcquisitionParams(),
            lesion=lesion if lesion is not None else LesionParams(),
        )

    @property
    def modality_names(self) -> tuple[str, ...]:
        """The canonical modality names, in the order of the items' ``mask``."""
        return self.config.modalities

    @property
    def size(self) -> int:
        """Voxels per axis."""
        return self.config.size

    @property
    def lesions(self) -> bool:
        """Whether subjects get lesions."""
        return self.config.lesions

    def __len__(self) -> int:
        return self.n_subjects

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"SyntheticBrains index must be an int, not {type(index).__name__}")
        if index < 0:
            index += self.n_subjects
        if not 0 <= index < self.n_subjects:
            raise IndexError(
                f"index {index} out of range for SyntheticBrains of {self.n_subjects} subjects"
            )
        return index

    def subject_id(self, index: int) -> str:
        """The subject id of item ``index``, e.g. ``"synth-0007"``."""
        return f"{self.id_prefix}-{self._check_index(index):04d}"

    def subject_labels(self, index: int) -> dict[str, LabelValue]:
        """The lesion labels of item ``index`` without generating it (no ``brain_volume_ml``)."""
        index = self._check_index(index)
        schedule = lesion_schedule(self.config.lesion_types)
        lesion = schedule[index % len(schedule)] if self.config.lesions else schedule[0]
        return dict(lesion.labels)

    def generate(self, index: int) -> SyntheticSubject:
        """Generate item ``index`` with its anatomy, tissue map and drawn parameters.

        Returns:
            A :class:`~lightly_topo.data.synthetic.generator.SyntheticSubject`; its images
            are the raw contrasts (not z-scored).
        """
        index = self._check_index(index)
        return generate_subject(self.config, self.seed, index, self.subject_id(index))

    def __getitem__(self, index: int) -> VolumeItem:
        subject = self.generate(index)
        images = subject.images
        if self.normalize:
            foreground = subject.foreground[0].numpy()
            images = {
                name: torch.from_numpy(zscore_foreground(image[0].numpy(), foreground))[None]
                for name, image in images.items()
            }
        item = VolumeItem(
            subject_id=subject.subject_id,
            session=None,
            images=images,
            mask=torch.ones(len(self.modality_names), dtype=torch.bool),
            modality_names=self.modality_names,
            label_map=subject.lesion_map if self.config.lesions else None,
            labels=subject.labels,
            affine=subject.affine,
        )
        if self.transform is not None:
            return self.transform(item)
        return item

    def save(self, root: str | Path, layout: str = "brats", **kwargs: Any) -> Path:
        """Write the subjects as a NIfTI folder; see
        :func:`~lightly_topo.data.synthetic.io.write_brats_folder` (the only layout)."""
        from lightly_topo.data.synthetic.io import write_brats_folder

        if layout != "brats":
            raise ValueError(f"layout={layout!r} is not supported; use layout='brats'")
        return write_brats_folder(self, root, **kwargs)

    def __repr__(self) -> str:
        c = self.config
        source = "procedural" if c.label_maps is None else f"{len(c.label_maps)} label maps"
        return (
            f"SyntheticBrains(n_subjects={self.n_subjects}, size={c.size}, "
            f"modalities={c.modalities}, lesions={c.lesions}, anatomy={source}, seed={self.seed})"
        )
