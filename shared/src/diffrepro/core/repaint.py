"""RePaint-style inpainting with a pixel DDPM: known pixels pasted from the forward process.

At every reverse step of DDPM ancestral sampling (over ``steps`` evenly spaced timesteps of the
model's schedule) the known pixels are replaced by a fresh forward sample of the ground truth at
the level being sampled, ``x_{t-1} = m ⊙ (√ᾱ_{t-1} x + √(1-ᾱ_{t-1}) z) + (1 - m) ⊙ x_{t-1}^model``,
so the last step (ᾱ = 1, no noise) returns ``x`` exactly on the known pixels. This is RePaint
without its resampling jumps (r = 1, documented); the number of network evaluations per image is
``steps`` (SDM: its few iterations, one evaluation each).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

from diffrepro.core.samplers import StepState, sample_ddpm
from diffrepro.core.schedules import Schedule, space_timesteps


@dataclasses.dataclass
class PastedInpainting:
    image: Tensor  # (B, 3, H, W) in [-1, 1]
    network_evaluations_per_image: int


def pasting_callback(image: Tensor, mask0: Tensor) -> Callable[[StepState], StepState]:
    """Replace the known pixels (``mask0`` = 1) by q(x_{t-1} | x) at every step."""

    def step(state: StepState) -> StepState:
        known_mean = state.alpha_bar_prev**0.5 * image
        known_var = torch.full_like(state.variance, 1.0 - state.alpha_bar_prev)
        mean = mask0 * known_mean + (1 - mask0) * state.mean
        variance = mask0 * known_var + (1 - mask0) * state.variance
        return dataclasses.replace(state, mean=mean, variance=variance)

    return step


@torch.no_grad()
def repaint_inpaint(
    model: Callable[[Tensor, Tensor], Tensor],
    schedule: Schedule,
    image: Tensor,
    mask0: Tensor,
    steps: int,
    generator: torch.Generator | None = None,
) -> PastedInpainting:
    """Inpaint ``image`` where ``mask0`` = 0 with an ε-model ``model(x, t)`` and ``steps`` steps."""
    if not 1 <= steps <= len(schedule):
        raise ValueError(f"steps must lie in [1, {len(schedule)}], got {steps}")
    chain = schedule.respace(space_timesteps(len(schedule), [steps]))
    calls = [0]

    def counted(x: Tensor, t: Tensor) -> Tensor:
        calls[0] += 1
        return model(x, t)

    start = torch.randn(image.shape, generator=generator, device=image.device, dtype=image.dtype)
    result = sample_ddpm(
        counted,
        start,
        chain,
        clip_x0=1.0,
        generator=generator,
        callback=pasting_callback(image, mask0),
    )
    return PastedInpainting(result.clamp(-1, 1), calls[0])
