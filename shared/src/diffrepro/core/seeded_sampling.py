"""DDIM from per-seed noise with any guided model on a Stable Diffusion bundle's scheduler
(Imagic's stage C, SINE's model-based guidance): sample ``k`` depends only on ``seeds[k]``.

- :func:`sample_seeded`: ``model(x, t)`` sampled over the bundle's DDIM grid of ``num_steps``
  from fresh per-seed noise (or given ``latents``), with the scheduler's final alpha,
  prediction type and clipping; each seed's generator also draws its ``ddim_eta`` noise.
- :func:`decode_clamped`: latents to images in [-1, 1], float32 on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.samplers import make_generators, sample_ddim


@torch.no_grad()
def sample_seeded(
    sd: StableDiffusion,
    model: Callable[[Tensor, Tensor], Tensor],
    seeds: Sequence[int],
    *,
    height: int,
    width: int,
    num_steps: int,
    ddim_eta: float = 0.0,
    latents: Tensor | None = None,
) -> Tensor:
    """Latents (len(seeds), C, h, w) sampled with ``model`` (batched like the seeds)."""
    generators = make_generators(seeds, "cpu")
    if latents is None:
        latents = sd.initial_latents(len(seeds), height, width, generators)
    scheduler = sd.scheduler
    return sample_ddim(
        model,
        latents.to(sd.device, sd.dtype),
        sd.schedule,
        timesteps=scheduler.grid(num_steps),
        eta=ddim_eta,
        final_alpha_cumprod=scheduler.final_alpha_cumprod(sd.schedule),
        prediction=scheduler.prediction,
        clip_x0=scheduler.clip_sample_range if scheduler.clip_sample else None,
        generator=generators,
    )


def decode_clamped(sd: StableDiffusion, latents: Tensor) -> Tensor:
    with torch.no_grad():
        return sd.decode_latents(latents).clamp(-1, 1).float().cpu()
