"""The decoupled variance loss: DDPM's discretised Gaussian likelihood with a stop-gradient mean.

-log ∫_{δ-(y)}^{δ+(y)} N(v; sg[μ], σ²) dv per pixel-channel, with bins of width 2/255 around the
8-bit value y ∈ [-1, 1] and open outer bins at ±1 (spec §3.4, reconstructed). Only σ gets a
gradient: the mean is detached here, it is trained by the adversarial and perceptual losses.
"""

from __future__ import annotations

import torch
from torch.special import log_ndtr

BIN_HALF_WIDTH = 1.0 / 255.0
EDGE = 1.0 - 1e-3  # |y| above this is the open outer bin (8-bit 0 or 255)


def discretised_gaussian_log_prob(
    y: torch.Tensor, mean: torch.Tensor, sigma: torch.Tensor
) -> torch.Tensor:
    """log P(bin of y) under N(mean, sigma²), elementwise; numerically stable in both tails."""
    lower = (y - BIN_HALF_WIDTH - mean) / sigma
    upper = (y + BIN_HALF_WIDTH - mean) / sigma
    # Φ(b) - Φ(a) = Φ(-a) - Φ(-b): evaluate on the side where both CDFs are small.
    flip = (lower + upper) > 0
    lo = torch.where(flip, -upper, lower)
    hi = torch.where(flip, -lower, upper)
    log_hi = log_ndtr(hi)
    inner = log_hi + torch.log(-torch.expm1(torch.clamp(log_ndtr(lo) - log_hi, max=-1e-12)))
    below, above = log_ndtr(upper), log_ndtr(-lower)  # the open bins (-∞, b] and [a, ∞)
    return torch.where(y < -EDGE, below, torch.where(y > EDGE, above, inner))


def variance_nll(y: torch.Tensor, mean: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Σ over pixel-channels of -log P, averaged over the batch; no gradient reaches ``mean``."""
    log_prob = discretised_gaussian_log_prob(y, mean.detach(), sigma)
    return -log_prob.flatten(1).sum(1).mean()
