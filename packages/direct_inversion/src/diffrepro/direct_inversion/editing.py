"""Steps 3-4 of Direct Inversion: guided DDIM from the inverted latent with the λ blend.

Editing step k (k = 0 … N-1, highest noise first) runs core ``sample_ddim`` with classifier-free
guidance on the target prompt (unconditional = CLIP("")); for the first K steps its per-step
callback replaces the guided prediction by (spec §3.3)

    ε̃_k = ε_cfg,k + λ (ε_inv[N-1-k] - ε_cfg,k) = (1-λ) ε_cfg,k + λ ε_inv[N-1-k]

and recomputes the DDIM step from ε̃_k. With the consistent grid and λ = 1 every step replays
the inversion step it mirrors, so the result is z_0 whatever the prompt and w; λ = 0 (or K = 0)
is plain "DDIM inversion + CFG sampling".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.samplers import (
    Callback,
    Generators,
    StepState,
    ddim_mean_variance,
    per_sample_noise,
    sample_ddim,
)

from .config import DirectInversionConfig
from .inversion import InversionBuffer, invert, official_editing_grid


@dataclass(frozen=True)
class EditResult:
    """Edited latents and images, and the inversion they were made from."""

    latents: Tensor
    images: Tensor  # decoded, nominally in [-1, 1]
    buffer: InversionBuffer
    reconstruction: Tensor  # decode(z0): the VAE's round trip of the source


def check_buffer(buffer: InversionBuffer, grid_name: str, grid: np.ndarray) -> None:
    """Editing step k reads ``buffer.eps[N-1-k]``: the buffer must mirror the editing grid."""
    if buffer.grid != grid_name:
        raise ValueError(
            f"the inversion buffer was made on the {buffer.grid} grid, editing asks for the "
            f"{grid_name} grid"
        )
    if len(buffer) != len(grid):
        raise ValueError(
            f"the inversion buffer holds {len(buffer)} steps but editing runs {len(grid)}: "
            "Direct Inversion needs steps == inv_steps"
        )
    expected = buffer.editing_grid
    if not np.array_equal(expected, np.asarray(grid)):
        raise ValueError(
            f"the inversion buffer was made on the {buffer.grid} grid "
            f"{expected.tolist()[:3]}..., editing runs on {np.asarray(grid).tolist()[:3]}..."
        )


def blend_callback(
    buffer: InversionBuffer,
    lam: float,
    num_blended: int,
    *,
    blend_with: str = "eps",
    eta: float = 0.0,
    clip_x0: float | None = None,
) -> Callback:
    """The sampler callback of the λ blend over the first ``num_blended`` steps."""
    n = len(buffer)

    def blend(state: StepState) -> StepState | None:
        if state.i >= num_blended:
            return None
        target = buffer.eps[n - 1 - state.i] if blend_with == "eps" else buffer.zT
        eps = state.eps + lam * (target - state.eps)
        x0 = (state.x - (1 - state.alpha_bar) ** 0.5 * eps) / state.alpha_bar**0.5
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
        mean, _ = ddim_mean_variance(x0, eps, state.alpha_bar, state.alpha_bar_prev, eta)
        return dataclasses.replace(state, eps=eps, x0=x0, mean=mean)

    return blend


def editing_grid(sd: StableDiffusion, cfg: DirectInversionConfig) -> np.ndarray:
    """The descending editing grid: the model's scheduler grid, or the official offset-1 grid."""
    if cfg.grid == "official":
        return official_editing_grid(cfg.steps)
    return sd.scheduler.grid(cfg.steps)


def edit_latents(
    sd: StableDiffusion,
    buffer: InversionBuffer,
    prompt: str | list[str],
    cfg: DirectInversionConfig,
    *,
    generator: Generators = None,
    progress: bool = False,
) -> Tensor:
    """Guided DDIM on ``prompt`` from ``buffer.zT`` with the λ blend (module docstring)."""
    grid = editing_grid(sd, cfg)
    check_buffer(buffer, cfg.grid, grid)
    batch = buffer.zT.shape[0]
    prompts = [prompt] * batch if isinstance(prompt, str) else list(prompt)
    if len(prompts) != batch:
        raise ValueError(f"got {len(prompts)} prompts for {batch} inverted images")
    model = sd.guided_denoiser(
        sd.encode_prompt(prompts), sd.encode_prompt([""] * batch), cfg.guidance
    )
    clip_x0 = sd.scheduler.clip_sample_range if sd.scheduler.clip_sample else None
    start = buffer.zT
    if not cfg.direct_injection:
        start = per_sample_noise(buffer.zT.shape, generator, buffer.zT.device, buffer.zT.dtype)
    callback = blend_callback(
        buffer, cfg.lam, cfg.num_blended, blend_with=cfg.blend_with, eta=cfg.eta, clip_x0=clip_x0
    )
    return sample_ddim(
        model,
        start,
        sd.schedule,
        timesteps=grid,
        eta=cfg.eta,
        final_alpha_cumprod=sd.scheduler.final_alpha_cumprod(sd.schedule),
        prediction=sd.scheduler.prediction,
        clip_x0=clip_x0,
        generator=generator,
        callback=callback,
        progress=progress,
    )


def encode(
    sd: StableDiffusion,
    images: Tensor,
    cfg: DirectInversionConfig,
    generator: torch.Generator | None = None,
) -> Tensor:
    """z_0 of images in [-1, 1]: a seeded posterior sample (the official code) or the mean."""
    return sd.encode_images(images, sample=cfg.vae_sample, generator=generator)


def direct_inversion(
    sd: StableDiffusion,
    images: Tensor,
    prompt: str | list[str],
    cfg: DirectInversionConfig,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> EditResult:
    """The whole method on images (B, 3, H, W) in [-1, 1]: encode, invert, edit, decode."""
    with torch.no_grad():
        z0 = encode(sd, images, cfg, generator)
        buffer = invert(
            sd,
            z0,
            cfg.inv_steps,
            prompt=cfg.inversion_prompt,
            grid=cfg.grid,
            progress=progress,
        )
        latents = edit_latents(sd, buffer, prompt, cfg, generator=generator, progress=progress)
        return EditResult(
            latents=latents,
            images=sd.decode_latents(latents),
            buffer=buffer,
            reconstruction=sd.decode_latents(z0),
        )
