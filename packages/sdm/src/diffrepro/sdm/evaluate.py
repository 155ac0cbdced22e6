"""Scores of inpainted images: hole PSNR / SSIM, uncertainty calibration, feature distances.

Images are (B, 3, H, W) in [-1, 1]; masks (B, 1, H, W) with 1 = known. The calibration is the
Spearman rank correlation, over all hole pixels, between the predicted per-pixel uncertainty and
the actual absolute error of the mean. The Fréchet distance is between Gaussian fits of two
feature sets (FID's formula, here on whatever features are given).
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity


def hole_psnr(fake: torch.Tensor, real: torch.Tensor, mask0: torch.Tensor) -> float:
    """Mean over images of the PSNR (dB, data range 1) of the hole pixels."""
    hole = (1 - mask0).expand_as(real)
    mse = (((fake - real) / 2).square() * hole).flatten(1).sum(1) / hole.flatten(1).sum(1).clamp(
        min=1
    )
    return float((10 * torch.log10(1.0 / mse.clamp(min=1e-10))).mean())


def hole_ssim(fake: torch.Tensor, real: torch.Tensor, mask0: torch.Tensor) -> float:
    """Mean over images of the SSIM map (7×7 windows) averaged over the hole pixels."""
    scores = []
    for f, r, m in zip(fake.cpu().numpy(), real.cpu().numpy(), mask0.cpu().numpy()):
        _, ssim_map = structural_similarity(r, f, data_range=2.0, channel_axis=0, full=True)
        hole = m[0] == 0
        scores.append(float(ssim_map.mean(axis=0)[hole].mean()))
    return float(np.mean(scores))


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors (ties ranked by position)."""
    if a.numel() < 2:
        raise ValueError("Spearman correlation needs at least two values")
    ranks = [torch.argsort(torch.argsort(v.double())).double() for v in (a.flatten(), b.flatten())]
    ra, rb = (r - r.mean() for r in ranks)
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp(min=1e-12))


def calibration(
    mean: torch.Tensor, sigma: torch.Tensor, real: torch.Tensor, mask0: torch.Tensor
) -> float:
    """Spearman correlation of predicted uncertainty and |mean - real| over the hole pixels."""
    hole = mask0[:, 0] == 0
    uncertainty = sigma.mean(1)[hole]
    error = (mean.clamp(-1, 1) - real).abs().mean(1)[hole]
    return spearman(uncertainty, error)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖μ_a - μ_b‖² + tr(Σ_a + Σ_b - 2 (Σ_a Σ_b)^½) of two (N, d) feature sets, in float64."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross)
