"""Stage C sampling: DDIM from pure noise (no inversion of the input) with classifier-free
guidance between the interpolated embedding and the frozen encoder's empty prompt, both through
the (fine-tuned) UNet. At ``guidance_scale == 1`` the unconditional branch is not evaluated."""

from __future__ import annotations

import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.samplers import Generators, cfg_model, make_generators, sample_ddim


def guided_model(sd: StableDiffusion, cond: Tensor, uncond: Tensor, guidance_scale: float):
    """``model(x, t)``: ``f(x, 0) + w (f(x, e) - f(x, 0))``; just ``f(x, e)`` at ``w == 1``."""
    return cfg_model(sd.unet, cond, uncond, guidance_scale)


@torch.no_grad()
def sample_embedding(
    sd: StableDiffusion,
    cond: Tensor,
    *,
    seeds: list[int],
    height: int,
    width: int,
    guidance_scale: float,
    num_steps: int,
    ddim_eta: float = 0.0,
    uncond: Tensor | None = None,
    latents: Tensor | None = None,
) -> Tensor:
    """Latents sampled under ``cond`` (1, L, D), one per seed (sample k depends only on seed k)."""
    n = len(seeds)
    if uncond is None and guidance_scale != 1.0:
        uncond = sd.encode_prompt("")
    generators: Generators = make_generators(seeds, "cpu")
    if latents is None:
        latents = sd.initial_latents(n, height, width, generators)
    cond_b = cond.expand(n, -1, -1).to(sd.device, sd.dtype)
    uncond_b = uncond.expand(n, -1, -1).to(sd.device, sd.dtype) if uncond is not None else None
    model = guided_model(sd, cond_b, uncond_b, guidance_scale)
    return sample_ddim(
        model,
        latents.to(sd.device, sd.dtype),
        sd.schedule,
        timesteps=sd.scheduler.grid(num_steps),
        eta=ddim_eta,
        final_alpha_cumprod=sd.scheduler.final_alpha_cumprod(sd.schedule),
        prediction=sd.scheduler.prediction,
        clip_x0=sd.scheduler.clip_sample_range if sd.scheduler.clip_sample else None,
        generator=generators,
    )


def decode(sd: StableDiffusion, latents: Tensor) -> Tensor:
    with torch.no_grad():
        return sd.decode_latents(latents).clamp(-1, 1).float().cpu()
