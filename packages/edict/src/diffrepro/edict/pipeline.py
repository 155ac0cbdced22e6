"""EDICT on a Stable Diffusion bundle: encode, invert, denoise, reconstruct, edit.

Built on core pieces only: the bundle's UNet / VAE / text encoder
(:class:`diffrepro.core.models.stable_diffusion.StableDiffusion`), classifier-free guidance
(``samplers.cfg_model``), the DDIM step (``samplers.ddim_affine``), the timestep grid
(``schedules.spaced_timesteps`` + ``strength_timesteps``), and for the baseline
(``method="ddim"``) the core ``invert_ddim`` / ``sample_ddim`` over the same active grid::

    cfg = EDICTConfig()                                   # S=50, s=0.8, G=3, p=0.93, float64
    z0 = encode(sd, images, cfg, generator)               # VAE posterior sample * 0.18215
    x, y = invert(sd, z0, "a cat face", cfg)              # (x_T, y_T) at the first active step
    x, y = denoise(sd, x, y, "a dog face", cfg)           # the edit (same prompt: reconstruction)
    image = sd.decode_latents(select_output(x, y, cfg))

Latents may be a batch (one prompt per row, or one prompt for all). ``sd`` must already hold
``cfg``'s dtype (``sd.to(dtype=cfg.torch_dtype)``); the latents are cast to it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.samplers import cfg_model, invert_ddim, sample_ddim, x0_eps_from_prediction
from diffrepro.core.schedules import spaced_timesteps, strength_timesteps

from .config import EDICTConfig
from .coupled import DDIMStep, EpsFn, ddim_steps, edict_denoise, edict_invert

Prompts = str | list[str]


def active_timesteps(sd: StableDiffusion, cfg: EDICTConfig) -> np.ndarray:
    """The descending active grid: the last int(S * s) entries of the S-step grid."""
    sched = sd.scheduler
    offset = sched.steps_offset if cfg.steps_offset is None else cfg.steps_offset
    grid = spaced_timesteps(sched.num_train_timesteps, cfg.steps, sched.timestep_spacing, offset)
    return strength_timesteps(grid, cfg.strength)


def coupled_steps(sd: StableDiffusion, cfg: EDICTConfig) -> list[DDIMStep]:
    """(timestep, a, b) of every active step; the last goes to the scheduler's final alpha-bar."""
    final = sd.scheduler.final_alpha_cumprod(sd.schedule)
    return ddim_steps(sd.schedule.alphas_cumprod, active_timesteps(sd, cfg), final)


def guided_model(sd: StableDiffusion, prompts: Prompts, batch: int, cfg: EDICTConfig):
    """``model(z, t)``: the UNet under CFG, eps_u + G (eps_c - eps_u), null prompt = ""."""
    prompts = [prompts] * batch if isinstance(prompts, str) else list(prompts)
    if len(prompts) != batch:
        raise ValueError(f"got {len(prompts)} prompts for a batch of {batch} latents")
    cond = sd.encode_prompt(prompts)
    uncond = sd.encode_prompt([cfg.null_prompt] * batch)
    return cfg_model(sd.unet, cond, uncond, cfg.guidance)


def noise_predictor(sd: StableDiffusion, prompts: Prompts, batch: int, cfg: EDICTConfig) -> EpsFn:
    """``eps(z, timestep)``: the guided prediction converted to eps at z (eps / v / x0 models)."""
    model = guided_model(sd, prompts, batch, cfg)
    abar = sd.schedule.alphas_cumprod
    prediction = sd.scheduler.prediction

    def eps(z: Tensor, timestep: int) -> Tensor:
        t = torch.full((z.shape[0],), int(timestep), dtype=torch.long, device=z.device)
        level = torch.tensor(abar[int(timestep)], dtype=torch.float64)
        return x0_eps_from_prediction(model(z, t), z, level, prediction)[1].to(z.dtype)

    return eps


def encode(
    sd: StableDiffusion,
    images: Tensor,
    cfg: EDICTConfig,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Images (B, 3, H, W) in [-1, 1] -> x0 latents (a seeded posterior sample, or the mean)."""
    with torch.no_grad():
        return sd.encode_images(images, sample=cfg.posterior == "sample", generator=generator)


def invert(
    sd: StableDiffusion, latents: Tensor, prompts: Prompts, cfg: EDICTConfig, *, progress=False
) -> tuple[Tensor, Tensor]:
    """Clean latents -> (x, y) at the first active timestep (x = y for the DDIM baseline)."""
    z = latents.to(sd.device, sd.dtype)
    with torch.no_grad():
        if cfg.method == "ddim":
            zT = invert_ddim(
                guided_model(sd, prompts, z.shape[0], cfg),
                z,
                sd.schedule,
                timesteps=active_timesteps(sd, cfg),
                final_alpha_cumprod=sd.scheduler.final_alpha_cumprod(sd.schedule),
                prediction=sd.scheduler.prediction,
                progress=progress,
            )
            return zT, zT
        eps = noise_predictor(sd, prompts, z.shape[0], cfg)
        return edict_invert(
            eps,
            z,
            z.clone(),
            coupled_steps(sd, cfg),
            p=cfg.p,
            leapfrog=cfg.leapfrog,
            order_key=cfg.order_key,
            progress=progress,
        )


def denoise(
    sd: StableDiffusion,
    x: Tensor,
    y: Tensor,
    prompts: Prompts,
    cfg: EDICTConfig,
    *,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """(x, y) at the first active timestep -> clean (x, y) under ``prompts``."""
    x, y = x.to(sd.device, sd.dtype), y.to(sd.device, sd.dtype)
    with torch.no_grad():
        if cfg.method == "ddim":
            z0 = sample_ddim(
                guided_model(sd, prompts, x.shape[0], cfg),
                x,
                sd.schedule,
                timesteps=active_timesteps(sd, cfg),
                final_alpha_cumprod=sd.scheduler.final_alpha_cumprod(sd.schedule),
                prediction=sd.scheduler.prediction,
                progress=progress,
            )
            return z0, z0
        eps = noise_predictor(sd, prompts, x.shape[0], cfg)
        return edict_denoise(
            eps, x, y, coupled_steps(sd, cfg), p=cfg.p, leapfrog=cfg.leapfrog, progress=progress
        )


def select_output(x: Tensor, y: Tensor, cfg: EDICTConfig) -> Tensor:
    """The latent that is decoded: x (default), y, or their mean."""
    return {"x": x, "y": y, "mean": (x + y) / 2}[cfg.output]


def edit(
    sd: StableDiffusion,
    latents: Tensor,
    source: Prompts,
    target: Prompts,
    cfg: EDICTConfig,
    *,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Invert with the source prompt, denoise with the target prompt: clean (x, y)."""
    x, y = invert(sd, latents, source, cfg, progress=progress)
    return denoise(sd, x, y, target, cfg, progress=progress)


def reconstruct(
    sd: StableDiffusion, latents: Tensor, prompts: Prompts, cfg: EDICTConfig, *, progress=False
) -> tuple[Tensor, Tensor]:
    """Invert and denoise with the same prompt (exact for EDICT up to rounding)."""
    return edit(sd, latents, prompts, prompts, cfg, progress=progress)


def decode(sd: StableDiffusion, latents: Tensor) -> Tensor:
    with torch.no_grad():
        return sd.decode_latents(latents.to(sd.device, sd.dtype))


def relative_error(estimate: Tensor, reference: Tensor) -> float:
    """||estimate - reference|| / ||reference|| in float64 (over the whole batch)."""
    estimate, reference = estimate.detach().double(), reference.detach().double()
    return float((estimate - reference).norm() / reference.norm())
