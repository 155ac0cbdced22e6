"""Per-restoration measures (images (1, 3, H, W) in [-1, 1]; every number is checked finite).

- ``psnr_hole`` / ``ssim_hole``: PSNR (data range 2) and mean local SSIM over the unknown
  pixels only (SSIM's window centred on a hole pixel; 7x7 windows for 32 px images);
- ``residual``: RMS of ``mask ⊙ (x̂ - y)`` over the known pixels (the measurement residual), and
  ``residual_sigma`` the same in units of the noise level (about 1 when the restoration
  explains the measurement down to its noise; None without noise);
- ``judge_dist``: 1 - cosine of the judge's identity embeddings of the truth and the restoration.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from diffrepro.core.metrics import ssim_map


def psnr_in(a: Tensor, b: Tensor, region: Tensor) -> float | None:
    """PSNR (dB, range 2) over the pixels where ``region`` is 1; None for an empty region."""
    weight = region.expand_as(a).double()
    if float(weight.sum()) < 1e-6:
        return None
    mse = float(((a.double() - b.double()) ** 2 * weight).sum() / weight.sum())
    return 10 * math.log10(4.0 / max(mse, 1e-12))


def ssim_in(a: Tensor, b: Tensor, region: Tensor, window: int) -> float | None:
    """Mean local SSIM over the windows centred on pixels where ``region`` is 1."""
    index = ssim_map(a, b, window_size=window)  # (1, C, H - w + 1, W - w + 1)
    pad = window // 2
    centres = region[..., pad : pad + index.shape[-2], pad : pad + index.shape[-1]]
    weight = centres.expand_as(index).double()
    if float(weight.sum()) < 1e-6:
        return None
    return float((index * weight).sum() / weight.sum())


@torch.no_grad()
def restoration_metrics(judge, truth: Tensor, problem, restored: Tensor) -> dict:
    restored = restored.detach().float().clamp(-1, 1).cpu()
    truth = truth.float().cpu()
    hole = 1 - problem.mask.cpu()
    window = 11 if truth.shape[-1] >= 64 else 7
    residual = problem.residual(restored)
    embed = judge.embed
    values = {
        "psnr_hole": psnr_in(restored, truth, hole),
        "ssim_hole": ssim_in(restored, truth, hole, window),
        "residual": residual,
        "residual_sigma": residual / problem.sigma if problem.sigma > 0 else None,
        "judge_dist": 1.0 - float(F.cosine_similarity(embed(truth), embed(restored)).mean()),
    }
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise FloatingPointError(f"the {name} of this restoration is not finite ({value})")
    return values
