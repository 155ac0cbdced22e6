import torch

from diffrepro.sdm.evaluate import calibration, frechet_distance, hole_psnr, hole_ssim, spearman


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=gen).double() * torch.tensor([1.0, 2.0, 0.5]).double()
    b = torch.randn(20000, 3, generator=gen).double() * torch.tensor([2.0, 1.0, 0.5]).double() + 1
    # ‖Δμ‖² = 3; Σ (σa - σb)² = 1 + 1 + 0
    assert abs(frechet_distance(a, b) - 5.0) < 0.15
    assert abs(frechet_distance(a, a)) < 1e-6


def test_spearman_and_calibration():
    x = torch.arange(100.0)
    assert abs(spearman(x, x**3) - 1) < 1e-12 and abs(spearman(x, -x) + 1) < 1e-12
    real = torch.zeros(1, 3, 4, 4)
    mean = torch.linspace(0, 0.9, 16).view(1, 1, 4, 4).expand(1, 3, 4, 4)
    mask0 = torch.zeros(1, 1, 4, 4)
    assert calibration(mean, mean.clone(), real, mask0) > 0.99  # σ ∝ error: perfectly calibrated
    assert calibration(mean, 1 - mean, real, mask0) < -0.99


def test_hole_scores_ignore_known_pixels():
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    mask0 = torch.ones(2, 1, 16, 16)
    mask0[..., 4:12, 4:12] = 0
    fake = torch.where(mask0.bool(), -real, real)  # wrong only where known
    assert hole_psnr(fake, real, mask0) > 90  # SSIM windows straddle the border, PSNR does not
    assert abs(hole_ssim(real, real, mask0) - 1) < 1e-6
    noisy = torch.where(mask0.bool(), real, real + 0.2)
    assert abs(hole_psnr(noisy, real, mask0) - 20.0) < 1e-3  # error 0.1 in [0, 1] units
    assert hole_ssim(noisy.clamp(-1, 1), real, mask0) < 1
