"""Deterministic DDIM sampling (η = 0) of a pixel ε-model; image k depends only on (seed, k).

The grid is diffusers' "trailing" spacing (it starts at t = T−1, which matters with the few
steps of the CPU demo); x̂0 is clipped to [−1, 1] at every step, as guided-diffusion does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diffrepro.core.samplers import make_generators, per_sample_noise, sample_ddim
from diffrepro.core.schedules import Schedule, spaced_timesteps

from .training import denoiser


def sample_seeds(seed: int, n: int) -> list[int]:
    """One seed per image: image k's noise depends on (seed, k) only."""
    return [int(np.random.SeedSequence([seed, k]).generate_state(1)[0]) for k in range(n)]


@torch.no_grad()
def sample_images(
    model: nn.Module,
    schedule: Schedule,
    n: int,
    *,
    image_size: int,
    channels: int = 3,
    labels: torch.Tensor | None = None,
    num_steps: int = 50,
    seed: int = 0,
    batch_size: int = 64,
) -> torch.Tensor:
    """``n`` samples (n, channels, size, size) in [-1, 1]."""
    if n < 1:
        raise ValueError(f"the number of samples must be >= 1, got {n}")
    if labels is not None and labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    device = next(model.parameters()).device
    grid = spaced_timesteps(len(schedule), num_steps, "trailing")
    seeds = sample_seeds(seed, n)
    out = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        gens = make_generators(seeds[start:stop])
        x = per_sample_noise((stop - start, channels, image_size, image_size), gens, device)
        y = None if labels is None else labels[start:stop].to(device)
        out.append(sample_ddim(denoiser(model, y), x, schedule, timesteps=grid, clip_x0=1.0))
    return torch.cat(out).clamp(-1, 1).cpu()
