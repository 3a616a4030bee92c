"""Intensity transforms: formulas, independent draws per modality, identity at p = 0."""

from __future__ import annotations

import pytest
import torch

from lightly_topo.transforms import (
    RandomBiasField3D,
    RandomContrast3D,
    RandomGamma3D,
    RandomGaussianBlur3D,
    RandomGaussianNoise3D,
    RandomScaleShift3D,
)

ALL = {
    "gamma": lambda p: RandomGamma3D(0.4, p=p),
    "scale_shift": lambda p: RandomScaleShift3D(0.2, 0.2, p=p),
    "contrast": lambda p: RandomContrast3D((0.5, 1.5), p=p),
    "bias": lambda p: RandomBiasField3D(0.5, 2, p=p),
    "noise": lambda p: RandomGaussianNoise3D((0.05, 0.2), p=p),
    "blur": lambda p: RandomGaussianBlur3D((0.6, 1.2), p=p),
}


def _volume() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 10, 9, 8, generator=g)
    return base.repeat(4, 1, 1, 1)  # four identical modalities


@pytest.mark.parametrize("name", sorted(ALL))
def test_independent_draws_per_modality(name: str) -> None:
    out = ALL[name](1.0)(_volume(), generator=0)
    assert out.shape == (4, 10, 9, 8) and out.dtype == torch.float32
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.allclose(out[a], out[b]), f"channels {a} and {b} got the same draw"


@pytest.mark.parametrize("name", sorted(ALL))
def test_identity_when_p_is_zero(name: str) -> None:
    x = _volume()
    torch.testing.assert_close(ALL[name](0.0)(x, generator=0), x)


@pytest.mark.parametrize("name", sorted(ALL))
def test_params_reproduce_output(name: str) -> None:
    t = ALL[name](0.7)
    x = _volume()
    params = t.sample_params(4, torch.Generator().manual_seed(3))
    torch.testing.assert_close(t.apply(x, params), t.apply(x, params))
    batch = t.apply_batch(torch.stack([x, x * 2]), [params, params])
    torch.testing.assert_close(batch[0], t.apply(x, params))


def test_scale_shift_formula() -> None:
    t = RandomScaleShift3D(0.1, 0.1, p=1.0)
    x = _volume()
    p = t.sample_params(4, torch.Generator().manual_seed(0))
    assert bool(((p.scale - 1).abs() <= 0.1).all()) and bool((p.shift.abs() <= 0.1).all())
    expected = x * p.scale.float().view(4, 1, 1, 1) + p.shift.float().view(4, 1, 1, 1)
    torch.testing.assert_close(t.apply(x, p), expected)


def test_gamma_keeps_range_and_contrast_keeps_mean() -> None:
    x = _volume() * 3 - 1
    g = RandomGamma3D(0.5, p=1.0)(x, generator=0)
    torch.testing.assert_close(g.amin(dim=(1, 2, 3)), x.amin(dim=(1, 2, 3)))
    torch.testing.assert_close(g.amax(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3)))
    c = RandomContrast3D((0.5, 1.5), p=1.0)(x, generator=0)
    torch.testing.assert_close(c.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5, rtol=0)


def test_blur_keeps_constants_and_smooths() -> None:
    blur = RandomGaussianBlur3D((1.0, 1.0), p=1.0)
    const = torch.full((2, 7, 7, 7), 3.0)
    torch.testing.assert_close(blur(const, generator=0), const)
    x = _volume()
    assert float(blur(x, generator=0).std()) < float(x.std())


def test_noise_std_and_bias_field_positive() -> None:
    x = torch.zeros(2, 24, 24, 24)
    noise = RandomGaussianNoise3D((0.1, 0.1), p=1.0)(x, generator=0)
    assert float(noise.std()) == pytest.approx(0.1, rel=0.05)
    ones = torch.ones(2, 6, 6, 6)
    field = RandomBiasField3D(0.3, 3, p=1.0)(ones, generator=0)
    assert bool((field > 0).all()) and not torch.allclose(field, ones)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="probability"):
        RandomGamma3D(p=1.5)
    with pytest.raises(ValueError, match="min <= max"):
        RandomContrast3D((1.5, 0.5))
