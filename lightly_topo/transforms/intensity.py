"""Per-modality intensity transforms: one independent draw per channel.

Each transform draws its parameters with :meth:`IntensityTransform3D.sample_params` (one
value per channel: a channel that is not transformed gets the identity value) and applies
them with :meth:`IntensityTransform3D.apply_batch` to ``(B, C, d, h, w)`` tensors on any
device, vectorised over batch and channels. The per-subject path applies the same code to a
batch of one, so both paths give the same output for the same parameters.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lightly_topo.transforms.random import (
    GeneratorLike,
    RandomState,
    bernoulli,
    check_probability,
    resolve_generator,
    uniform,
)
from lightly_topo.transforms.spatial import check_volume


def stack_params(params: Sequence[Any], device: torch.device | str | None) -> dict[str, Tensor]:
    """Stack the tensor fields of per-subject parameter dataclasses along a new batch axis."""
    return {
        f.name: torch.stack([getattr(p, f.name) for p in params]).to(device)
        for f in fields(params[0])
    }


def _range(
    value: float | tuple[float, float], name: str, centre: float = 0.0
) -> tuple[float, float]:
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
        return (centre - float(value), centre + float(value))
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise ValueError(f"{name} must be (min, max) with min <= max, got {value}")
    return (lo, hi)


class IntensityTransform3D(ABC):
    """Base class of the per-channel intensity transforms.

    Args:
        p: Probability, per channel, of transforming that channel.
        seed: Seed of the transform's own generator, used when a call passes none.
    """

    def __init__(self, p: float, seed: int | None = None) -> None:
        self.p = check_probability("p", p)
        self.random_state = RandomState(seed)

    @abstractmethod
    def sample_params(self, num_channels: int, generator: torch.Generator) -> Any:
        """Draw the parameters of ``num_channels`` channels (a dataclass of tensors)."""

    @abstractmethod
    def apply_batch(self, x: Tensor, params: Sequence[Any]) -> Tensor:
        """Apply per-subject ``params`` to ``x`` (B, C, d, h, w); returns a new tensor."""

    def apply(self, x: Tensor, params: Any) -> Tensor:
        """Apply ``params`` to one volume ``x`` (C, d, h, w)."""
        return self.apply_batch(x[None], [params])[0]

    def __call__(self, x: Tensor, generator: GeneratorLike = None) -> Tensor:
        check_volume(x, "x")
        gen = resolve_generator(generator, self.random_state)
        return self.apply(x, self.sample_params(x.shape[0], gen))

    def _applied(self, num_channels: int, generator: torch.Generator) -> Tensor:
        return bernoulli(generator, self.p, (num_channels,))


@dataclass(frozen=True)
class GammaParams:
    gamma: Tensor  # float64 (C,)


class RandomGamma3D(IntensityTransform3D):
    """Gamma correction on the channel's min-max range:
    ``x' = ((x - min) / (max - min)) ** gamma * (max - min) + min`` with
    ``log(gamma) ~ U(log_gamma)`` (as MONAI's ``AdjustContrast``; min and max per channel).

    Args:
        log_gamma: Range of ``log(gamma)`` (a half-width or ``(min, max)``).
        p: Probability per channel.
        seed: Seed of the transform's own generator.
    """

    def __init__(
        self, log_gamma: float | tuple[float, float] = 0.3, p: float = 0.5, seed: int | None = None
    ) -> None:
        super().__init__(p, seed)
        self.log_gamma = _range(log_gamma, "log_gamma")

    def sample_params(self, num_channels: int, generator: torch.Generator) -> GammaParams:
        applied = self._applied(num_channels, generator)
        gamma = torch.exp(uniform(generator, *self.log_gamma, (num_channels,)))
        return GammaParams(torch.where(applied, gamma, torch.ones_like(gamma)))

    def apply_batch(self, x: Tensor, params: Sequence[GammaParams]) -> Tensor:
        gamma = stack_params(params, x.device)["gamma"].flatten()
        active = torch.nonzero(gamma != 1).flatten()
        flat = x.reshape(-1, x[0, 0].numel())
        result = flat.clone()
        if active.numel() == 0:
            return result.reshape(x.shape)
        sel = flat.index_select(0, active)
        lo = sel.amin(-1, keepdim=True)
        span = sel.amax(-1, keepdim=True) - lo
        unit = ((sel - lo) / span.clamp_min(1e-8)).clamp(0.0, 1.0)
        result[active] = unit.pow(gamma[active, None].to(x.dtype)) * span + lo
        return result.reshape(x.shape)


@dataclass(frozen=True)
class ScaleShiftParams:
    scale: Tensor  # float64 (C,)
    shift: Tensor  # float64 (C,)


class RandomScaleShift3D(IntensityTransform3D):
    """``x' = x * scale + shift`` with ``scale ~ 1 + U(+-scale)`` and ``shift ~ U(+-shift)``,
    each applied independently with probability ``p`` per channel (MONAI's
    ``RandScaleIntensity`` and ``RandShiftIntensity``).

    Args:
        scale: Half-range of the relative scale (or ``(min, max)`` of ``scale - 1``).
        shift: Half-range of the shift (or ``(min, max)``).
        p: Probability per channel of each of scaling and shifting.
        seed: Seed of the transform's own generator.

    >>> t = RandomScaleShift3D(scale=0.0, shift=(1.0, 1.0), p=1.0)
    >>> float(t(torch.zeros(1, 2, 2, 2), generator=0).mean())
    1.0
    """

    def __init__(
        self,
        scale: float | tuple[float, float] = 0.1,
        shift: float | tuple[float, float] = 0.1,
        p: float = 0.1,
        seed: int | None = None,
    ) -> None:
        super().__init__(p, seed)
        self.scale = _range(scale, "scale")
        self.shift = _range(shift, "shift")

    def sample_params(self, num_channels: int, generator: torch.Generator) -> ScaleShiftParams:
        apply_scale = self._applied(num_channels, generator)
        apply_shift = self._applied(num_channels, generator)
        scale = 1.0 + uniform(generator, *self.scale, (num_channels,))
        shift = uniform(generator, *self.shift, (num_channels,))
        return ScaleShiftParams(
            torch.where(apply_scale, scale, torch.ones_like(scale)),
            torch.where(apply_shift, shift, torch.zeros_like(shift)),
        )

    def apply_batch(self, x: Tensor, params: Sequence[ScaleShiftParams]) -> Tensor:
        p = stack_params(params, x.device)
        return (
            x * p["scale"].to(x.dtype)[..., None, None, None]
            + p["shift"].to(x.dtype)[..., None, None, None]
        )


@dataclass(frozen=True)
class ContrastParams:
    factor: Tensor  # float64 (C,)


class RandomContrast3D(IntensityTransform3D):
    """``x' = (x - mean) * factor + mean`` (mean over the channel's voxels),
    ``factor ~ U(factor)``.

    Args:
        factor: Range of the contrast factor.
        p: Probability per channel.
        seed: Seed of the transform's own generator.
    """

    def __init__(
        self, factor: tuple[float, float] = (0.75, 1.25), p: float = 0.5, seed: int | None = None
    ) -> None:
        super().__init__(p, seed)
        self.factor = _range(factor, "factor")

    def sample_params(self, num_channels: int, generator: torch.Generator) -> ContrastParams:
        applied = self._applied(num_channels, generator)
        factor = uniform(generator, *self.factor, (num_channels,))
        return ContrastParams(torch.where(applied, factor, torch.ones_like(factor)))

    def apply_batch(self, x: Tensor, params: Sequence[ContrastParams]) -> Tensor:
        factor = stack_params(params, x.device)["factor"].to(x.dtype)[..., None, None, None]
        mean = x.mean(dim=(2, 3, 4), keepdim=True)
        return (x - mean) * factor + mean


@dataclass(frozen=True)
class BiasFieldParams:
    coefficients: Tensor  # float64 (C, order + 1, order + 1, order + 1)


class RandomBiasField3D(IntensityTransform3D):
    """Multiply by a smooth bias field ``exp(sum_{i+j+k <= order} c_ijk z^i y^j x^k)``, with
    ``z, y, x`` in ``[-1, 1]`` across the view and ``c_ijk ~ U(+-coefficients)`` (the
    polynomial model of torchio's ``RandomBiasField``).

    Args:
        coefficients: Half-range of the polynomial coefficients.
        order: Polynomial order.
        p: Probability per channel.
        seed: Seed of the transform's own generator.
    """

    def __init__(
        self, coefficients: float = 0.5, order: int = 3, p: float = 0.5, seed: int | None = None
    ) -> None:
        super().__init__(p, seed)
        if coefficients < 0 or order < 0:
            raise ValueError(
                f"coefficients and order must be non-negative, got {coefficients} and {order}"
            )
        self.coefficients = float(coefficients)
        self.order = int(order)

    def sample_params(self, num_channels: int, generator: torch.Generator) -> BiasFieldParams:
        n = self.order + 1
        applied = self._applied(num_channels, generator)
        coef = uniform(generator, -self.coefficients, self.coefficients, (num_channels, n, n, n))
        i, j, k = torch.meshgrid(torch.arange(n), torch.arange(n), torch.arange(n), indexing="ij")
        coef = coef * ((i + j + k) <= self.order) * applied[:, None, None, None]
        return BiasFieldParams(coef)

    def apply_batch(self, x: Tensor, params: Sequence[BiasFieldParams]) -> Tensor:
        coef = stack_params(params, x.device)["coefficients"].to(x.dtype)
        n = coef.shape[-1]
        powers = torch.arange(n, device=x.device, dtype=x.dtype)
        bases = [
            torch.linspace(-1.0, 1.0, s, device=x.device, dtype=x.dtype)[None, :] ** powers[:, None]
            for s in x.shape[2:]
        ]
        log_field = torch.einsum("bcijk,kw->bcijw", coef, bases[2])
        log_field = torch.einsum("bcijw,jh->bcihw", log_field, bases[1])
        log_field = torch.einsum("bcihw,id->bcdhw", log_field, bases[0])
        return x * torch.exp(log_field)


@dataclass(frozen=True)
class NoiseParams:
    std: Tensor  # float64 (C,)
    seed: Tensor  # int64 ()


class RandomGaussianNoise3D(IntensityTransform3D):
    """Add ``N(0, std^2)`` noise, ``std ~ U(std)`` per channel.

    The noise itself is drawn at application from a generator seeded with the parameters'
    ``seed`` on the tensor's device (one draw per subject), so the same parameters give the
    same noise on the same device in both paths.

    Args:
        std: Range of the noise standard deviation.
        p: Probability per channel.
        seed: Seed of the transform's own generator.
    """

    def __init__(
        self, std: tuple[float, float] = (0.0, 0.1), p: float = 0.5, seed: int | None = None
    ) -> None:
        super().__init__(p, seed)
        self.std = _range(std, "std")
        if self.std[0] < 0:
            raise ValueError(f"std must be non-negative, got {std}")

    def sample_params(self, num_channels: int, generator: torch.Generator) -> NoiseParams:
        applied = self._applied(num_channels, generator)
        std = uniform(generator, *self.std, (num_channels,))
        seed = torch.randint(0, 2**62, (), generator=generator, dtype=torch.int64)
        return NoiseParams(torch.where(applied, std, torch.zeros_like(std)), seed)

    def apply_batch(self, x: Tensor, params: Sequence[NoiseParams]) -> Tensor:
        std = stack_params(params, x.device)["std"].to(x.dtype)
        # One generator call per subject (cheap); the arithmetic below is batched.
        noise = torch.zeros_like(x)
        for b, p in enumerate(params):
            if bool((p.std > 0).any()):
                gen = torch.Generator(device=x.device).manual_seed(int(p.seed))
                noise[b] = torch.randn(x.shape[1:], generator=gen, device=x.device, dtype=x.dtype)
        return x + noise * std[..., None, None, None]


@dataclass(frozen=True)
class BlurParams:
    sigma: Tensor  # float64 (C,), 0 = no blur


class RandomGaussianBlur3D(IntensityTransform3D):
    """Gaussian blur with ``sigma ~ U(sigma)`` voxels per channel (isotropic, separable,
    kernel radius ``ceil(3 * max(sigma))``, replicate padding).

    Args:
        sigma: Range of the standard deviation in voxels.
        p: Probability per channel.
        seed: Seed of the transform's own generator.
    """

    def __init__(
        self, sigma: tuple[float, float] = (0.5, 1.0), p: float = 0.5, seed: int | None = None
    ) -> None:
        super().__init__(p, seed)
        self.sigma = _range(sigma, "sigma")
        if self.sigma[0] < 0:
            raise ValueError(f"sigma must be non-negative, got {sigma}")
        self.radius = max(1, math.ceil(3 * self.sigma[1]))

    def sample_params(self, num_channels: int, generator: torch.Generator) -> BlurParams:
        applied = self._applied(num_channels, generator)
        sigma = uniform(generator, *self.sigma, (num_channels,))
        return BlurParams(torch.where(applied, sigma, torch.zeros_like(sigma)))

    def apply_batch(self, x: Tensor, params: Sequence[BlurParams]) -> Tensor:
        sigma = stack_params(params, x.device)["sigma"].to(torch.float64).flatten()
        active = torch.nonzero(sigma > 0).flatten()
        if active.numel() == 0:
            return x.clone()
        r = self.radius
        offsets = torch.arange(-r, r + 1, device=x.device, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (offsets[None, :] / sigma[active, None]) ** 2)
        kernel = (kernel / kernel.sum(-1, keepdim=True)).to(x.dtype)
        taps = kernel.view(1, -1, 2 * r + 1, 1, 1, 1)
        flat = x.reshape(1, -1, *x.shape[2:])
        out = flat.index_select(1, active)
        for axis in range(3):  # separable: a weighted sum of shifted copies per axis
            pad = [0] * 6
            pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = r
            padded = F.pad(out, pad, mode="replicate")
            size = out.shape[2 + axis]
            acc = torch.zeros_like(out)
            for t in range(2 * r + 1):
                acc.addcmul_(taps[:, :, t], padded.narrow(2 + axis, t, size))
            out = acc
        result = flat.clone()
        result[:, active] = out
        return result.reshape(x.shape)
