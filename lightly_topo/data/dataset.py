"""A map-style dataset of multimodal 3D volumes, one item per subject."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from lightly_topo.data.cache import VolumeCache
from lightly_topo.data.errors import (
    DataError,
    EmptyDatasetError,
    ManifestError,
    MissingFileError,
    RegistrationError,
)
from lightly_topo.data.io import NiftiHeader, load_image, load_label_map, read_header
from lightly_topo.data.modalities import MODALITIES, normalize_modality
from lightly_topo.data.preprocess import (
    crop_affine,
    foreground_bbox,
    grid_for_spacing,
    reorient_to_ras,
    resample_volume,
    voxel_spacing,
    zscore_foreground,
)
from lightly_topo.data.types import ModalityFile, Subject, VolumeItem

_F16_MAX = float(np.finfo(np.float16).max)
_LABEL = "label_map"


class MultiModalVolumeDataset(Dataset):
    """Subjects with several co-registered MRI modalities, decoded, preprocessed and cached.

    Item ``i`` is the :class:`~lightly_topo.data.VolumeItem` of subject ``i``: one float32
    ``(1, D, H, W)`` tensor per *available* modality, the availability ``mask`` over
    :attr:`modality_names`, the label map (int64 ``(1, D, H, W)``) if the subject has one, the
    subject-level labels and the voxel-to-world affine of the returned grid.

    Preprocessing, in order: (1) decode; (2) check that the modalities (and the label map)
    share one voxel grid: same shape and affines equal within ``affine_atol`` mm, because the
    cross-modal losses need voxel ``i`` of every modality to be the same point. A mismatch
    raises :class:`~lightly_topo.data.errors.RegistrationError`, unless ``resample_to`` names a
    reference modality onto whose grid the others are then resampled (trilinear; nearest for
    the label map); (3) reorient to RAS+ (axis permutations and flips only); (4) resample to
    ``spacing`` if given; (5) crop to the bounding box of the union of the modalities'
    foreground, grown by ``crop_margin`` voxels, if ``crop_foreground``; (6) z-score each
    modality over its own foreground (:func:`~lightly_topo.data.preprocess.zscore_foreground`:
    a constant, e.g. all-zero, volume becomes all zeros, never NaN; background voxels become
    0, so the foreground stays the non-zero voxels). The foreground is the
    voxels that differ from the background value: 0 (``background="zero"``, skull-stripped
    MRI) or the value of voxel ``(0, 0, 0)`` (``"corner"``, for sets such as BraTS 2015
    DeepMedic whose background sits at the minimum).

    A missing modality is first-class: it is absent from ``images`` and ``False`` in ``mask``;
    it is never replaced by zeros.

    Caching: with ``cache_dir``, the preprocessed arrays of each subject are written once
    (images as ``image_dtype``, label maps as the smallest of uint8/int16/int32 that holds
    them) and later read back memory-mapped, so later epochs never decode NIfTI again. Keys
    hash the files' content and the settings (see :mod:`lightly_topo.data.cache`). Without a
    cache the same arrays (same dtype rounding) are computed on every call, so an item does not
    depend on whether it came from the cache. Nothing is held in memory between calls, so
    memory stays flat however many subjects there are; worker processes of a ``DataLoader``
    share the cache folder safely.

    Bad input: at construction every file is checked from its header only (exists, readable,
    not truncated, 3D or the named channel of a 4D file, same grid across modalities)
    (``validate="header"``; ``"exists"`` only checks existence, ``"none"`` nothing, for very
    large corpora). Voxel content (NaN, Inf) can only be checked when decoding, in
    ``__getitem__``. With ``on_error="raise"`` (default) the first error is raised. With
    ``on_error="skip"`` a bad subject is never dropped silently: at construction it is left
    out with a ``warnings.warn`` naming the subject, file and reason; in ``__getitem__`` a
    subject that fails to load is warned about the same way, remembered as bad in that process,
    and the next subject (``index + 1``, ``index + 2``, ... wrapping around) that loads is
    returned in its place, so a ``DataLoader`` never stops on one bad file. If no subject
    loads, :class:`~lightly_topo.data.errors.EmptyDatasetError` is raised.

    Args:
        subjects: The subjects, or a folder / manifest read with
            :func:`~lightly_topo.data.read_subjects` and ``layout``.
        layout: Layout for a path ``subjects`` (``"auto"`` detects it).
        modality_names: The modality vocabulary (canonical or alias names). ``None`` uses every
            modality that some subject has, in :data:`~lightly_topo.data.MODALITIES` order.
            Modalities of a subject outside the vocabulary are not loaded; a subject with none
            of them is left out with a warning.
        cache_dir: Folder for the on-disk cache, or ``None`` for no cache.
        spacing: Target voxel size in mm (one number or three), or ``None`` to keep it.
        crop_foreground: Crop every subject to its foreground bounding box.
        crop_margin: Voxels kept around the foreground when cropping.
        normalize: Z-score each modality over its foreground.
        background: ``"zero"`` or ``"corner"`` (see above).
        resample_to: Reference modality for subjects whose modalities are not on one grid
            (opt-in); if a subject lacks it, its first available modality (vocabulary order) is
            the reference. ``None`` raises RegistrationError on a mismatch.
        affine_atol: Tolerance (mm, per affine element) of the co-registration check.
        image_dtype: ``"float16"`` (compact, default; values are clipped to its range) or
            ``"float32"``: the precision images are stored (and returned) with.
        validate: ``"header"``, ``"exists"`` or ``"none"`` (see above).
        on_error: ``"raise"`` or ``"skip"`` (see above).
        transform: Callable applied to each :class:`~lightly_topo.data.VolumeItem` (e.g. the
            view transforms of :mod:`lightly_topo.transforms`); its result is returned.

    Raises:
        EmptyDatasetError: No subject (left).
        ManifestError: Two subjects with the same ``subject_id``/``session``.
        MissingFileError, CorruptFileError, InvalidVolumeError, RegistrationError: Bad files
            (at construction, from headers, unless ``on_error="skip"``).

    >>> import tempfile, nibabel as nib
    >>> folder = Path(tempfile.mkdtemp())
    >>> for m in ("t1", "flair"):
    ...     vol = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
    ...     nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / f"s1_{m}.nii.gz")
    >>> subject = Subject("s1", {m: ModalityFile(m, folder / f"s1_{m}.nii.gz") for m in ("t1", "flair")})
    >>> ds = MultiModalVolumeDataset([subject], modality_names=("t1", "t2", "flair"))
    >>> item = ds[0]
    >>> sorted(item["images"]), item["mask"].tolist(), tuple(item["images"]["t1"].shape)
    (['flair', 't1'], [True, False, True], (1, 8, 8, 8))
    """

    def __init__(
        self,
        subjects: Sequence[Subject] | str | Path,
        *,
        layout: str = "auto",
        modality_names: Sequence[str] | None = None,
        cache_dir: str | Path | None = None,
        spacing: float | Sequence[float] | None = None,
        crop_foreground: bool = False,
        crop_margin: int = 0,
        normalize: bool = True,
        background: Literal["zero", "corner"] = "zero",
        resample_to: str | None = None,
        affine_atol: float = 1e-3,
        image_dtype: Literal["float16", "float32"] = "float16",
        validate: Literal["header", "exists", "none"] = "header",
        on_error: Literal["raise", "skip"] = "raise",
        transform: Callable[[VolumeItem], Any] | None = None,
    ) -> None:
        if isinstance(subjects, str | Path):
            from lightly_topo.data.readers import read_subjects

            subjects = read_subjects(subjects, layout=layout)
        _check_choice("background", background, ("zero", "corner"))
        _check_choice("image_dtype", image_dtype, ("float16", "float32"))
        _check_choice("validate", validate, ("header", "exists", "none"))
        _check_choice("on_error", on_error, ("raise", "skip"))
        if crop_margin < 0:
            raise ValueError(f"crop_margin must be >= 0, got {crop_margin}")
        self.spacing: tuple[float, float, float] | None = None
        if spacing is not None:
            sp = (
                [float(spacing)] * 3
                if isinstance(spacing, int | float)
                else [float(s) for s in spacing]
            )
            if len(sp) != 3 or min(sp) <= 0:
                raise ValueError(
                    f"spacing must be a positive number or three of them (mm), got {spacing}"
                )
            self.spacing = (sp[0], sp[1], sp[2])
        self.crop_foreground = bool(crop_foreground)
        self.crop_margin = int(crop_margin)
        self.normalize = bool(normalize)
        self.background = background
        self.resample_to = (
            None if resample_to is None else normalize_modality(resample_to, "resample_to")
        )
        self.affine_atol = float(affine_atol)
        self.image_dtype = image_dtype
        self.on_error = on_error
        self.transform = transform
        self.cache = None if cache_dir is None else VolumeCache(cache_dir)

        canonical = [_canonical_subject(s) for s in subjects]
        if not canonical:
            raise EmptyDatasetError("MultiModalVolumeDataset: no subjects were given")
        if modality_names is None:
            present = {m for s in canonical for m in s.images}
            order = [m for m in MODALITIES if m in present] + sorted(present - set(MODALITIES))
            self.modality_names: tuple[str, ...] = tuple(order)
        else:
            names = [normalize_modality(m, "modality_names") for m in modality_names]
            if len(set(names)) != len(names) or not names:
                raise ValueError(
                    f"modality_names must be distinct and non-empty, got {modality_names}"
                )
            self.modality_names = tuple(names)

        self.subjects: list[Subject] = []
        seen: dict[str, Subject] = {}
        without = []
        for subject in canonical:
            if subject.key in seen:
                raise ManifestError(
                    f"subject {subject.key!r} appears twice (files {_first_file(seen[subject.key])} "
                    f"and {_first_file(subject)}); subject_id/session must be unique"
                )
            seen[subject.key] = subject
            if not any(m in subject.images for m in self.modality_names):
                without.append(subject.key)
                continue
            try:
                if validate != "none":
                    self._validate(subject, headers=validate == "header")
            except DataError as err:
                if on_error == "raise":
                    raise
                warnings.warn(f"skipping subject {subject.key!r}: {err}", stacklevel=2)
                continue
            self.subjects.append(subject)
        if without:
            warnings.warn(
                f"{len(without)} subject(s) have none of the modalities {self.modality_names} and "
                f"are left out: {', '.join(without[:5])}{' ...' if len(without) > 5 else ''}",
                stacklevel=2,
            )
        if not self.subjects:
            raise EmptyDatasetError(
                f"MultiModalVolumeDataset: none of the {len(canonical)} subject(s) is usable "
                f"(modalities {self.modality_names}); see the warnings above"
            )
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.subjects)

    def __repr__(self) -> str:
        return (
            f"MultiModalVolumeDataset({len(self)} subjects, modalities={self.modality_names}, "
            f"cache={self.cache})"
        )

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} subjects")
        index %= n
        if self.on_error == "raise":
            return self._item(index)
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                continue
            try:
                return self._item(i)
            except DataError as err:
                self._bad.add(i)
                warnings.warn(
                    f"skipping subject {self.subjects[i].key!r} (index {i}): {err}; "
                    "the next subject that loads is returned in its place",
                    stacklevel=2,
                )
        raise EmptyDatasetError(f"no subject of {self!r} could be loaded; see the warnings above")

    # ------------------------------------------------------------------ items

    def _item(self, index: int) -> Any:
        subject = self.subjects[index]
        names = [m for m in self.modality_names if m in subject.images]
        arrays, affine = self._arrays(subject, names)
        images = {m: torch.from_numpy(np.asarray(arrays[m], dtype=np.float32))[None] for m in names}
        label_map = None
        if _LABEL in arrays:
            label_map = torch.from_numpy(np.asarray(arrays[_LABEL], dtype=np.int64))[None]
        item: VolumeItem = {
            "subject_id": subject.subject_id,
            "session": subject.session,
            "images": images,
            "mask": torch.tensor(
                [m in subject.images for m in self.modality_names], dtype=torch.bool
            ),
            "modality_names": self.modality_names,
            "label_map": label_map,
            "labels": dict(subject.labels),
            "affine": torch.from_numpy(np.asarray(affine, dtype=np.float64)),
        }
        return item if self.transform is None else self.transform(item)

    def _settings(self, names: list[str]) -> dict[str, Any]:
        return {
            "modalities": names,
            "spacing": self.spacing,
            "crop_foreground": self.crop_foreground,
            "crop_margin": self.crop_margin,
            "normalize": self.normalize,
            "background": self.background,
            "resample_to": self.resample_to,
            "affine_atol": self.affine_atol,
            "image_dtype": self.image_dtype,
        }

    def _arrays(
        self, subject: Subject, names: list[str]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if self.cache is None:
            return self._preprocess(subject, names)
        sources = {}
        for m in names:
            f = subject.images[m]
            sources[m] = f"{self._hash(f.path, subject)}:{f.channel}"
        if subject.label_map is not None:
            sources[_LABEL] = self._hash(subject.label_map, subject)
        key = self.cache.entry_key(sources, self._settings(names))
        hit = self.cache.load(key)
        if hit is not None:
            arrays, meta = hit
            return arrays, np.asarray(meta["affine"], dtype=np.float64)
        arrays, affine = self._preprocess(subject, names)
        self.cache.save(key, arrays, {"affine": affine.tolist(), "subject": subject.key})
        return arrays, affine

    def _hash(self, path: Path, subject: Subject) -> str:
        assert self.cache is not None
        try:
            return self.cache.content_hash(path)
        except FileNotFoundError as err:
            raise MissingFileError(
                f"{path}: file of subject {subject.key!r} does not exist (any more)"
            ) from err

    # ---------------------------------------------------------- preprocessing

    def _preprocess(
        self, subject: Subject, names: list[str]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        raw = {m: load_image(subject.images[m].path, subject.images[m].channel) for m in names}
        label = None if subject.label_map is None else load_label_map(subject.label_map)
        ref = self._reference(subject, names)
        ref_vol, ref_aff = raw[ref]
        vol_r, aff = reorient_to_ras(ref_vol, ref_aff)
        shape = vol_r.shape
        vols: dict[str, np.ndarray] = {}
        for m in names:
            vol, a = raw[m]
            path = subject.images[m].path
            if m == ref:
                vols[m] = vol_r
            elif self._same_grid(vol.shape, a, ref_vol.shape, ref_aff):
                vols[m] = reorient_to_ras(vol, a)[0]
            elif self.resample_to is not None:
                vols[m] = resample_volume(vol, a, aff, shape, mode="linear")
            else:
                raise _registration_error(
                    subject, subject.images[ref].path, ref_vol.shape, ref_aff, path, vol.shape, a
                )
        lab = None
        if label is not None:
            lvol, la = label
            if self._same_grid(lvol.shape, la, ref_vol.shape, ref_aff):
                lab = reorient_to_ras(lvol, la)[0]
            elif self.resample_to is not None:
                lab = np.rint(resample_volume(lvol, la, aff, shape, mode="nearest")).astype(
                    np.int64
                )
            else:
                assert subject.label_map is not None
                raise _registration_error(
                    subject,
                    subject.images[ref].path,
                    ref_vol.shape,
                    ref_aff,
                    subject.label_map,
                    lvol.shape,
                    la,
                )
        del raw, label

        if self.spacing is not None and not np.allclose(
            voxel_spacing(aff), self.spacing, atol=1e-4
        ):
            new_shape, new_aff = grid_for_spacing(shape, aff, self.spacing)
            vols = {
                m: resample_volume(v, aff, new_aff, new_shape, mode="linear")
                for m, v in vols.items()
            }
            if lab is not None:
                lab = np.rint(resample_volume(lab, aff, new_aff, new_shape, mode="nearest")).astype(
                    np.int64
                )
            aff = new_aff

        fgs = {m: self._foreground(v) for m, v in vols.items()}
        if self.crop_foreground:
            union = np.zeros(vols[names[0]].shape, dtype=bool)
            for fg in fgs.values():
                union |= fg
            box = foreground_bbox(union, self.crop_margin)
            if box is not None:
                vols = {m: np.ascontiguousarray(v[box]) for m, v in vols.items()}
                fgs = {m: fg[box] for m, fg in fgs.items()}
                lab = None if lab is None else np.ascontiguousarray(lab[box])
                aff = crop_affine(aff, box)

        out: dict[str, np.ndarray] = {}
        for m, v in vols.items():
            if self.normalize:
                v = zscore_foreground(v, fgs[m])
            if self.image_dtype == "float16":
                out[m] = np.clip(v, -_F16_MAX, _F16_MAX).astype(np.float16)
            else:
                out[m] = v.astype(np.float32)
        if lab is not None:
            out[_LABEL] = _compact_labels(lab)
        return out, aff

    def _foreground(self, vol: np.ndarray) -> np.ndarray:
        value = 0.0 if self.background == "zero" else float(vol.flat[0])
        # A tolerance, so that resampling round-off of a constant background stays background.
        return np.asarray(np.abs(vol - value) > 1e-5 * max(1.0, abs(value)))

    def _reference(self, subject: Subject, names: list[str]) -> str:
        if self.resample_to is not None and self.resample_to in names:
            return self.resample_to
        return names[0]

    def _same_grid(
        self,
        shape_a: tuple[int, ...],
        aff_a: np.ndarray,
        shape_b: tuple[int, ...],
        aff_b: np.ndarray,
    ) -> bool:
        return tuple(shape_a[:3]) == tuple(shape_b[:3]) and bool(
            np.allclose(aff_a, aff_b, rtol=0.0, atol=self.affine_atol)
        )

    def _validate(self, subject: Subject, headers: bool) -> None:
        names = [m for m in self.modality_names if m in subject.images]
        files = [(m, subject.images[m].path, subject.images[m].channel) for m in names]
        if subject.label_map is not None:
            files.append((_LABEL, subject.label_map, None))
        if not headers:
            for m, path, _ in files:
                if not Path(path).is_file():
                    raise MissingFileError(
                        f"{path}: {m} file of subject {subject.key!r} does not exist"
                    )
            return
        heads: dict[str, NiftiHeader] = {}
        for m, path, channel in files:
            heads[m] = read_header(path, channel)
        if self.resample_to is not None:
            return
        ref = heads[names[0]]
        for h in heads.values():
            if not self._same_grid(h.shape, h.affine, ref.shape, ref.affine):
                raise _registration_error(
                    subject, ref.path, ref.shape, ref.affine, h.path, h.shape, h.affine
                )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _canonical_subject(subject: Subject) -> Subject:
    """The subject with canonical modality keys and Path objects (the same object if it has)."""
    images: dict[str, ModalityFile] = {}
    for name, f in subject.images.items():
        m = normalize_modality(name, f"subject {subject.key!r}")
        if m in images:
            raise ManifestError(
                f"subject {subject.key!r} has two files for modality {m!r}: {images[m].path} and {f.path}"
            )
        images[m] = ModalityFile(m, Path(f.path), f.channel)
    label_map = None if subject.label_map is None else Path(subject.label_map)
    if images == subject.images and label_map == subject.label_map:
        return subject
    return Subject(
        subject.subject_id,
        images,
        session=subject.session,
        label_map=label_map,
        labels=dict(subject.labels),
        dataset=subject.dataset,
    )


def _first_file(subject: Subject) -> str:
    return str(next(iter(subject.images.values())).path) if subject.images else "(no files)"


def _registration_error(
    subject: Subject,
    ref_path: Path,
    ref_shape: tuple[int, ...],
    ref_aff: np.ndarray,
    path: Path,
    shape: tuple[int, ...],
    aff: np.ndarray,
) -> RegistrationError:
    if tuple(shape[:3]) != tuple(ref_shape[:3]):
        what = f"shape {tuple(shape[:3])} vs {tuple(ref_shape[:3])}"
    else:
        diff = float(np.abs(np.asarray(aff) - np.asarray(ref_aff)).max())
        what = f"affines differ by up to {diff:.4g} mm:\n{np.round(aff, 4)}\nvs\n{np.round(ref_aff, 4)}"
    return RegistrationError(
        f"subject {subject.key!r}: {path} and {ref_path} are not on one voxel grid ({what}); "
        "the modalities of a subject must be co-registered (voxel i is the same point in all). "
        "Register them, or pass resample_to='<modality>' to resample onto one modality's grid"
    )


def _compact_labels(lab: np.ndarray) -> np.ndarray:
    lo, hi = (int(lab.min()), int(lab.max())) if lab.size else (0, 0)
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return lab.astype(dtype)
    return lab.astype(np.int64)
