"""Per-modality tissue contrast and the MR acquisition effects of the synthetic images.

Mean intensities per tissue are on the scale of images divided by their 99.5th percentile.
Grey matter, white matter and CSF of T1, T2 and PD are the means measured on real
co-registered templates (T1: grey 0.73, white 0.92, CSF 0.47; T2: 0.57, 0.45, 0.89; PD:
0.91, 0.78, 0.88). FLAIR nulls fluid (CSF dark), with grey brighter than white. T1ce is
T1 where an enhancing tumour rim is the brightest tissue. Lesions: necrotic core dark on
T1 and bright on T2; oedema and white-matter hyperintensities bright on T2 and FLAIR.

Per subject and modality, each mean is jittered by a few percent, then the image gets a
partial-volume blur, a smooth multiplicative bias field and Rician noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lightly_topo.data.synthetic.fields import gaussian_blur, smooth_field
from lightly_topo.data.synthetic.structures import LESION_LABELS, TISSUES

#: Mean intensity per tissue, in the order of :data:`TISSUES` (background, csf,
#: grey_matter, white_matter, deep_grey_matter, bone, soft_tissue).
TISSUE_CONTRAST: dict[str, tuple[float, ...]] = {
    "t1": (0.0, 0.47, 0.73, 0.92, 0.82, 0.12, 0.80),
    "t1ce": (0.0, 0.45, 0.73, 0.92, 0.82, 0.12, 0.82),
    "t2": (0.0, 0.89, 0.57, 0.45, 0.50, 0.10, 0.55),
    "pd": (0.0, 0.88, 0.91, 0.78, 0.86, 0.12, 0.80),
    "flair": (0.0, 0.08, 0.70, 0.55, 0.64, 0.05, 0.62),
}

#: Mean intensity per lesion label, in the order of :data:`LESION_LABELS` (background
#: unused, necrotic_core, oedema, enhancing, wm_hyperintensity).
LESION_CONTRAST: dict[str, tuple[float, ...]] = {
    "t1": (0.0, 0.35, 0.62, 0.68, 0.74),
    "t1ce": (0.0, 0.33, 0.64, 1.00, 0.74),
    "t2": (0.0, 0.95, 0.80, 0.70, 0.75),
    "pd": (0.0, 0.92, 0.92, 0.90, 0.90),
    "flair": (0.0, 0.45, 0.95, 0.85, 0.93),
}

#: The modalities the generator can synthesise.
SYNTHETIC_MODALITIES: tuple[str, ...] = tuple(TISSUE_CONTRAST)


@dataclass(frozen=True)
class AcquisitionParams:
    """Ranges of the per-subject, per-modality acquisition effects.

    Attributes:
        jitter: Standard deviation of the relative jitter of each mean (clipped at 2 sd).
        blur_voxels: Range of the partial-volume blur's standard deviation, in voxels.
        bias: Range of the standard deviation of the log bias field.
        noise: Range of the Rician noise's standard deviation.
    """

    jitter: float = 0.025
    blur_voxels: tuple[float, float] = (0.4, 0.8)
    bias: tuple[float, float] = (0.03, 0.10)
    noise: tuple[float, float] = (0.01, 0.03)


def render_modality(
    tissue: Tensor,
    lesion_map: Tensor | None,
    modality: str,
    params: AcquisitionParams,
    rng: np.random.Generator,
    generator: torch.Generator,
    lesion_contrast: float = 1.0,
) -> Tensor:
    """Synthesise one modality from the tissue (and lesion) map of a subject.

    Args:
        tissue: int64 (D, H, W) tissue ids (:data:`TISSUES`).
        lesion_map: int64 (D, H, W) lesion ids (:data:`LESION_LABELS`), or ``None``.
        modality: One of :data:`SYNTHETIC_MODALITIES`.
        params: Acquisition effects.
        rng: Source of the jitter and effect strengths.
        generator: Source of the bias field and noise.
        lesion_contrast: Fraction of the lesion-to-white-matter difference of
            :data:`LESION_CONTRAST` kept (1: the table as is).

    Returns:
        float32 (D, H, W) image, non-negative, about 1 at the brightest tissue.

    >>> tissue = torch.tensor([0, 1, 2, 3]).repeat(4, 4, 1)
    >>> image = render_modality(tissue, None, "t1", AcquisitionParams(), np.random.default_rng(0), torch.Generator())
    >>> bool(image[..., 3].mean() > image[..., 2].mean() > image[..., 1].mean())
    True
    """
    jitter = np.exp(
        np.clip(
            rng.normal(0.0, params.jitter, len(TISSUES) + len(LESION_LABELS)),
            -2 * params.jitter,
            2 * params.jitter,
        )
    )
    means = torch.tensor(
        np.asarray(TISSUE_CONTRAST[modality]) * jitter[: len(TISSUES)], dtype=torch.float32
    )
    image = means[tissue]
    if lesion_map is not None and bool((lesion_map > 0).any()):
        lesion_table = np.asarray(LESION_CONTRAST[modality])
        if lesion_contrast != 1.0:
            white = TISSUE_CONTRAST[modality][TISSUES["white_matter"]]
            lesion_table = white + lesion_contrast * (lesion_table - white)
        lesion_means = torch.tensor(lesion_table * jitter[len(TISSUES) :], dtype=torch.float32)
        image = torch.where(lesion_map > 0, lesion_means[lesion_map], image)
    image = gaussian_blur(image[None], float(rng.uniform(*params.blur_voxels)))[0]
    bias_sd = float(rng.uniform(*params.bias))
    image = image * torch.exp(bias_sd * smooth_field(1, 4, tissue.shape[0], generator)[0])
    sigma = float(rng.uniform(*params.noise))
    real = image + sigma * torch.randn(tissue.shape, generator=generator)
    imaginary = sigma * torch.randn(tissue.shape, generator=generator)
    return torch.sqrt(real * real + imaginary * imaginary)
