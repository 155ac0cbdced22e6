"""Scores of inpainted images: hole PSNR / SSIM and uncertainty calibration.

Images are (B, 3, H, W) in [-1, 1]; masks (B, 1, H, W) with 1 = known. Both hole scores build on
``diffrepro.core.metrics``: PSNR of the hole pixels, and the standard SSIM map (11-tap Gaussian
window) averaged over the hole pixels, each then averaged over the images. The calibration is the
Spearman rank correlation, over all hole pixels, between the predicted per-pixel uncertainty and
the actual absolute error of the mean. (The feature Fréchet distance is core's
``frechet_distance``.)

A NaN or infinite input is an error (FloatingPointError), never a score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffrepro.core.metrics import psnr, ssim_map

SSIM_WINDOW = 11


def require_finite(name: str, *tensors: torch.Tensor) -> None:
    """FloatingPointError if any of ``tensors`` holds NaN or ±inf."""
    for tensor in tensors:
        if not bool(torch.isfinite(tensor).all()):
            raise FloatingPointError(f"{name}: the input holds NaN or infinite values")


def hole_psnr(fake: torch.Tensor, real: torch.Tensor, mask0: torch.Tensor) -> float:
    """Mean over images of the PSNR (dB; data range 2 in [-1, 1] = 1 in [0, 1]) of the holes."""
    require_finite("hole PSNR", fake, real)
    scores = []
    for f, r, m in zip(fake, real, mask0):
        hole = m[0] == 0
        scores.append(psnr(f[:, hole][:, None], r[:, hole][:, None], data_range=2.0))
    return float(torch.cat(scores).mean())


def hole_ssim(fake: torch.Tensor, real: torch.Tensor, mask0: torch.Tensor) -> float:
    """Mean over images of the SSIM map averaged over the hole pixels.

    The images are reflect-padded by half a window so that the map has one value per pixel (the
    window centred on it), as scikit-image's full SSIM map does."""
    require_finite("hole SSIM", fake, real)
    pad = (SSIM_WINDOW // 2,) * 4
    padded = [F.pad(x.double(), pad, mode="reflect") for x in (fake, real)]
    local = ssim_map(*padded, data_range=2.0, window_size=SSIM_WINDOW).mean(1)
    hole = mask0[:, 0] == 0
    return float(torch.stack([v[h].mean() for v, h in zip(local, hole)]).mean())


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """0-based ranks of a 1-D tensor in float64, tied values sharing their average rank."""
    ordered, order = torch.sort(values.double(), stable=True)
    _, group, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    group_rank = counts.cumsum(0).double() - (counts.double() + 1) / 2
    ranks = torch.empty_like(ordered)
    ranks[order] = group_rank[group]
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors (ties get their average rank)."""
    if a.numel() < 2:
        raise ValueError("Spearman correlation needs at least two values")
    require_finite("Spearman correlation", a, b)
    ra, rb = (r - r.mean() for r in (average_ranks(v.flatten()) for v in (a, b)))
    denominator = ra.norm() * rb.norm()
    if float(denominator) == 0.0:
        raise FloatingPointError("Spearman correlation of a constant sequence is undefined")
    return float((ra * rb).sum() / denominator)


def calibration(
    mean: torch.Tensor,
    sigma: torch.Tensor,
    real: torch.Tensor,
    mask0: torch.Tensor,
    pixels: torch.Tensor | None = None,
) -> float:
    """Spearman correlation of predicted uncertainty and |mean - real| over the hole pixels
    (only those where ``pixels`` (B, H, W) is true, when given)."""
    hole = mask0[:, 0] == 0
    if pixels is not None:
        hole = hole & pixels
    uncertainty = sigma.mean(1)[hole]
    error = (mean.clamp(-1, 1) - real).abs().mean(1)[hole]
    return spearman(uncertainty, error)


def foreground(real: torch.Tensor) -> torch.Tensor:
    """(B, H, W) true where a pixel of ``real`` is not pure white (the emoji's background:
    white lies in the likelihood's open top bin, where σ is not a measure of the error)."""
    return (real < 1.0 - 1.0 / 255.0).any(dim=1)
