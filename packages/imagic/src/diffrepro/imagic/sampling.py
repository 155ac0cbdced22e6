"""Stage C sampling: DDIM from pure noise (no inversion of the input) with classifier-free
guidance between the interpolated embedding and the frozen encoder's empty prompt, both through
the (fine-tuned) UNet. At ``guidance_scale == 1`` the unconditional branch is not evaluated."""

from __future__ import annotations

import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.samplers import cfg_model
from diffrepro.core.seeded_sampling import sample_seeded


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
    cond_b = cond.expand(n, -1, -1).to(sd.device, sd.dtype)
    uncond_b = uncond.expand(n, -1, -1).to(sd.device, sd.dtype) if uncond is not None else None
    model = guided_model(sd, cond_b, uncond_b, guidance_scale)
    return sample_seeded(
        sd, model, seeds, height=height, width=width, num_steps=num_steps, ddim_eta=ddim_eta,
        latents=latents,
    )  # fmt: skip
