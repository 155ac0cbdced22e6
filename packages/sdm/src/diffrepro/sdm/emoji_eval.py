"""The demo's fair comparison on held-out emoji: every method sees the same images and masks.

For one evaluation seed: SDM with T = 1, 2, 4, 8 test-time iterations (one trained generator,
the sampling noise seeded identically for every T), the core pixel DDPM with RePaint-style
known-pixel pasting (``diffrepro.core.repaint``), and a white fill of the hole (the emoji's
background colour: what a method must beat to have inpainted anything). Each result is scored
in the hole (PSNR, SSIM), in the zoo judge's space (1 − cosine of the identity embeddings of the
result and the ground truth; identity top-1 of the result) and by its network evaluations per
image; SDM also by the calibration of its σ (Spearman of σ vs |μ − x| over all hole pixels, and
over the hole pixels that are not the white background).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from diffrepro.core.repaint import repaint_inpaint
from diffrepro.sdm.decoding import DecodeConfig, Step, inpaint
from diffrepro.sdm.evaluate import calibration, foreground, hole_psnr, hole_ssim, require_finite


@dataclass
class MethodRun:
    """What one method produced for a batch: the result and its cost."""

    image: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    evals_per_image: float
    steps: list[Step] | None = None  # SDM's iterations


def sdm_run(
    generator: nn.Module, image: torch.Tensor, mask0: torch.Tensor, iterations: int, seed: int
) -> MethodRun:
    """SDM with ``iterations`` test-time iterations; the noise generator seeded by ``seed``."""
    rng = torch.Generator(device=image.device).manual_seed(seed)
    with torch.no_grad():
        steps = inpaint(generator, image, mask0, DecodeConfig(steps=iterations), rng)
    return MethodRun(steps[-1].image, float(iterations), steps)


def repaint_run(
    unet: nn.Module, schedule, image: torch.Tensor, mask0: torch.Tensor, steps: int, seed: int
) -> MethodRun:
    """The pixel DDPM with RePaint-style pasting over ``steps`` steps (r = 1)."""
    rng = torch.Generator(device=image.device).manual_seed(seed)
    out = repaint_inpaint(lambda x, t: unet(x, t), schedule, image, mask0, steps, rng)
    return MethodRun(out.image, float(out.network_evaluations_per_image))


def white_fill(image: torch.Tensor, mask0: torch.Tensor) -> MethodRun:
    """The hole filled with white (1.0), the emoji's background; no network."""
    return MethodRun(torch.where(mask0.bool(), image, torch.ones_like(image)), 0.0)


@torch.no_grad()
def judge_scores(
    judge: nn.Module, result: torch.Tensor, real: torch.Tensor, targets: torch.Tensor
) -> dict[str, float]:
    """1 − cos of the judge's identity embeddings (mean) and identity top-1 accuracy."""
    require_finite("judge scores", result)
    cosine = (judge.embed(result) * judge.embed(real)).sum(-1)
    top1 = judge.identify(result, k=1)[:, 0].cpu() == targets.cpu()
    return {
        "judge_distance": float((1 - cosine).mean()),
        "identity_top1": float(top1.double().mean()),
    }


def score(
    run: MethodRun, real: torch.Tensor, mask0: torch.Tensor, judge: nn.Module, targets
) -> dict[str, float]:
    """Every score of one method's run (SDM's also its σ calibration)."""
    scores = {
        "hole_psnr_db": hole_psnr(run.image, real, mask0),
        "hole_ssim": hole_ssim(run.image, real, mask0),
        **judge_scores(judge, run.image, real, targets),
        "evals_per_image": run.evals_per_image,
    }
    if run.steps is not None:
        last = run.steps[-1]
        scores["calibration_spearman"] = calibration(last.mean, last.sigma, real, mask0)
        scores["calibration_foreground_spearman"] = calibration(
            last.mean, last.sigma, real, mask0, foreground(real)
        )
    return scores
