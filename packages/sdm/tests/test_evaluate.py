import math

import pytest
import torch

from diffrepro.sdm.evaluate import calibration, hole_psnr, hole_ssim, spearman


def test_spearman_and_calibration():
    x = torch.arange(100.0)
    assert abs(spearman(x, x**3) - 1) < 1e-12 and abs(spearman(x, -x) + 1) < 1e-12
    real = torch.zeros(1, 3, 4, 4)
    mean = torch.linspace(0, 0.9, 16).view(1, 1, 4, 4).expand(1, 3, 4, 4)
    mask0 = torch.zeros(1, 1, 4, 4)
    assert calibration(mean, mean.clone(), real, mask0) > 0.99  # σ ∝ error: perfectly calibrated
    assert calibration(mean, 1 - mean, real, mask0) < -0.99


def test_hole_scores_ignore_known_pixels():
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    mask0 = torch.ones(2, 1, 32, 32)
    mask0[..., 12:20, 12:20] = 0
    fake = real.clone()
    fake[..., :4, :] = -fake[..., :4, :]  # wrong only in known rows that no hole window reaches
    assert math.isinf(hole_psnr(fake, real, mask0))
    assert abs(hole_ssim(fake, real, mask0) - 1) < 1e-9
    near = torch.where(mask0.bool(), -real, real)  # wrong on known pixels next to the hole
    assert math.isinf(hole_psnr(near, real, mask0))  # SSIM windows straddle the border, PSNR not
    assert hole_ssim(near, real, mask0) < 1
    noisy = torch.where(mask0.bool(), real, real + 0.2)
    assert abs(hole_psnr(noisy, real, mask0) - 20.0) < 1e-3  # error 0.1 in [0, 1] units
    assert hole_ssim(noisy.clamp(-1, 1), real, mask0) < 1


def test_scores_refuse_nan():
    x = torch.arange(10.0)
    with pytest.raises(FloatingPointError):
        spearman(x, torch.full((10,), float("nan")))
    with pytest.raises(FloatingPointError):
        spearman(x, torch.ones(10))  # constant: undefined, not 0 or 1
    real, mask0 = torch.zeros(1, 3, 16, 16), torch.zeros(1, 1, 16, 16)
    nan = torch.full_like(real, float("nan"))
    for score in (hole_psnr, hole_ssim):
        with pytest.raises(FloatingPointError):
            score(nan, real, mask0)
    with pytest.raises(FloatingPointError):
        calibration(nan, nan, real, mask0)


def test_spearman_averages_tied_ranks():
    a, b = torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, b) == pytest.approx(4.5 / math.sqrt(4.5 * 5), abs=1e-12)


def test_foreground_calibration_uses_only_the_selected_hole_pixels():
    from diffrepro.sdm.evaluate import calibration, foreground, spearman

    gen = torch.Generator().manual_seed(0)
    real = torch.rand(2, 3, 8, 8, generator=gen) * 2 - 1
    real[:, :, :4] = 1.0  # a white background band
    mean = real + 0.3 * torch.randn(real.shape, generator=gen)
    sigma = torch.rand(real.shape, generator=gen)
    mask0 = torch.zeros(2, 1, 8, 8)
    mask0[:, :, :, :2] = 1  # known columns
    fg = foreground(real)
    assert not fg[:, :4].any() and fg[:, 4:].all()
    hole = (mask0[:, 0] == 0) & fg
    expected = spearman(sigma.mean(1)[hole], (mean.clamp(-1, 1) - real).abs().mean(1)[hole])
    assert calibration(mean, sigma, real, mask0, fg) == expected
    assert calibration(mean, sigma, real, mask0, fg) != calibration(mean, sigma, real, mask0)
