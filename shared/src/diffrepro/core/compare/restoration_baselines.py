"""The core's restoration baseline: the pixel DDPM with RePaint-style known-pixel pasting."""

from __future__ import annotations

import torch

from diffrepro.core.compare.restoring import (
    InpaintingProblem,
    RestorationMethod,
    RestorationResult,
    count_evals,
)
from diffrepro.core.repaint import repaint_inpaint
from diffrepro.core.zoo.ddpm import PixelDiffusion


def repaint(
    base: PixelDiffusion, problem: InpaintingProblem, *, seed: int, steps: int
) -> RestorationResult:
    """DDPM ancestral sampling over ``steps`` steps, pasting the known pixels at every step."""
    generator = torch.Generator(device=problem.measurement.device).manual_seed(seed)
    unet = base.unet
    with count_evals(unet) as evals:
        out = repaint_inpaint(
            lambda x, t: unet(x, t),
            base.schedule,
            problem.measurement,
            problem.mask,
            steps,
            generator,
        )
    return RestorationResult(out.image, evals[0])


def restoration_baselines() -> list[RestorationMethod]:
    return [RestorationMethod("repaint", "Pixel DDPM + RePaint-style pasting (r = 1)", repaint)]
