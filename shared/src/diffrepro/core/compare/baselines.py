"""The two baselines of the papers' tables, built from core pieces only.

- ``ddim``: DDIM inversion with the source prompt (no guidance), then guided DDIM from the
  inverted latent with the target prompt (the word swap): pix2pix-zero Table 1 row B, EDICT's
  and Direct Inversion's baseline. Its reconstruction regenerates with the source prompt.
- ``sdedit``: noise the source latent to ``strength`` of the grid with the seed's noise and
  denoise with the target prompt (Meng et al.). No inversion, so no reconstruction.

Both use classifier-free guidance ``GUIDANCE`` with the empty negative prompt and the VAE
posterior mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffrepro.core.compare.contract import EditMethod, EditResult, count_unet_evals
from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.samplers import per_sample_noise, sample_ddim
from diffrepro.core.schedules import strength_timesteps

GUIDANCE = 3.0  # EDICT's and Direct Inversion's published scale
SDEDIT_STRENGTH = 0.5  # pix2pix-zero's SDEdit baseline setting


@torch.no_grad()
def ddim_word_swap(
    sd: StableDiffusion, image: Tensor, source: str, target: str, *, seed: int, steps: int
) -> EditResult:
    """DDIM inversion (source prompt, w = 1) + guided regeneration with the target prompt."""
    z0 = sd.encode_images(image)
    with count_unet_evals(sd) as evals:
        z_t = sd.invert(z0, source, num_steps=steps)
        edited = sd.sample(target, num_steps=steps, guidance_scale=GUIDANCE, latents=z_t)
    recon = sd.sample(source, num_steps=steps, guidance_scale=GUIDANCE, latents=z_t)
    return EditResult(sd.decode_latents(edited), sd.decode_latents(recon), evals[0])


def sdedit_latents(
    sd: StableDiffusion, z0: Tensor, prompt: str, *, seed: int, steps: int, strength: float
) -> Tensor:
    """Noise ``z0`` to the first active level of the ``strength`` tail, denoise with ``prompt``."""
    grid = strength_timesteps(sd.scheduler.grid(steps), strength)
    generator = torch.Generator(device=z0.device).manual_seed(seed)
    noise = per_sample_noise(z0.shape, generator, z0.device, z0.dtype)
    abar = float(sd.schedule.alphas_cumprod[int(grid[0])])
    x = abar**0.5 * z0 + (1 - abar) ** 0.5 * noise
    model = sd.guided_denoiser(sd.encode_prompt([prompt]), sd.encode_prompt([""]), GUIDANCE)
    return sample_ddim(
        model,
        x,
        sd.schedule,
        timesteps=grid,
        final_alpha_cumprod=sd.scheduler.final_alpha_cumprod(sd.schedule),
        prediction=sd.scheduler.prediction,
        clip_x0=sd.scheduler.clip_sample_range if sd.scheduler.clip_sample else None,
    )


@torch.no_grad()
def sdedit_word_swap(
    sd: StableDiffusion, image: Tensor, source: str, target: str, *, seed: int, steps: int
) -> EditResult:
    """SDEdit at strength 0.5 with the target prompt (no inversion: no reconstruction)."""
    z0 = sd.encode_images(image)
    with count_unet_evals(sd) as evals:
        z = sdedit_latents(sd, z0, target, seed=seed, steps=steps, strength=SDEDIT_STRENGTH)
    return EditResult(sd.decode_latents(z), None, evals[0])


def baseline_methods() -> list[EditMethod]:
    return [
        EditMethod("ddim", "DDIM inversion + word swap", ddim_word_swap),
        EditMethod("sdedit", "SDEdit + word swap", sdedit_word_swap),
    ]
