"""The pix2pix-zero pipeline and the Table 1 baselines, over a core ``StableDiffusion`` bundle.

::

    z0 = encode(sd, images, cfg, generator)                       # VAE latents (seeded sample)
    x_t = start_latents(sd, z0, captions, cfg, generator)         # regularised DDIM inversion
    result = translate(sd, x_t, captions, direction, cfg)         # reference + guided edit pass
    sd.decode_latents(result.edited)

``direction`` is a (1, L, D) sentence-bank direction (:mod:`.directions`) or, for the word-swap
baselines, the per-caption difference ``E(swapped caption) − E(caption)`` (B, L, D).
The edit adds ``edit_multiplier · direction`` to the conditional branch only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.samplers import per_sample_noise, sample_ddim

from .config import Pix2PixZeroConfig
from .directions import Task, check_direction, sentence_direction, swap_word, template_sentences
from .guidance import contexts, edit_pass, guided_output, reference_pass
from .inversion import invert


@dataclass(frozen=True)
class EditResult:
    edited: Tensor  # edited latents
    reconstruction: Tensor  # the reference pass's latents
    xa_losses: tuple[float, ...]  # xa loss of every edit step (empty when λ_xa = 0)


def encode(sd: StableDiffusion, images: Tensor, cfg: Pix2PixZeroConfig, generator=None) -> Tensor:
    """Images in [-1, 1] → latents (a seeded posterior sample when ``cfg.vae_sample``)."""
    with torch.no_grad():
        return sd.encode_images(images, sample=cfg.vae_sample, generator=generator)


def text_states(sd: StableDiffusion, captions: list[str], cfg: Pix2PixZeroConfig):
    """(cond, uncond): the captions' states and the negative prompt's ("caption" or "")."""
    with torch.no_grad():
        cond = sd.encode_prompt(captions)
        uncond = cond if cfg.negative == "caption" else sd.encode_prompt([""] * len(captions))
    return cond, uncond


def start_latents(
    sd: StableDiffusion,
    z0: Tensor,
    captions: list[str],
    cfg: Pix2PixZeroConfig,
    generator: torch.Generator | None = None,
    *,
    progress: bool = False,
) -> Tensor:
    """x_T: the (regularised) DDIM inversion of ``z0``, or DDPM forward noise (``start="ddpm"``)."""
    if cfg.start == "ddpm":
        t0 = int(sd.scheduler.grid(cfg.edit.num_steps)[0])
        return q_sample(sd, z0, t0, per_sample_noise(z0.shape, generator, z0.device, z0.dtype))
    with torch.no_grad():
        cond = sd.encode_prompt(captions)
        uncond = sd.encode_prompt([""] * len(captions))
    return invert(
        sd, z0, cond, cfg.inversion, uncond=uncond, generator=generator, progress=progress
    )


def q_sample(sd: StableDiffusion, z0: Tensor, timestep: int, noise: Tensor) -> Tensor:
    """``sqrt(ᾱ_t) z0 + sqrt(1 − ᾱ_t) noise``."""
    abar = float(sd.schedule.alphas_cumprod[timestep])
    return abar**0.5 * z0 + (1 - abar) ** 0.5 * noise


def make_direction(
    sd: StableDiffusion, captions: list[str], task: Task, cfg: Pix2PixZeroConfig, sentences=None
) -> Tensor:
    """The direction ``cfg.direction`` asks for: the sentence banks' (``sentences`` = (source,
    target) lists, default the template banks) or the captions' word swap."""
    if cfg.direction == "word_swap":
        swapped = [swap_word(c, task) for c in captions]
        with torch.no_grad():
            return sd.encode_prompt(swapped) - sd.encode_prompt(captions)
    source, target = sentences or (template_sentences(task.source), template_sentences(task.target))
    return sentence_direction(sd, source, target, cfg.sentence_batch)


def translate(
    sd: StableDiffusion,
    x_t: Tensor,
    captions: list[str],
    direction: Tensor,
    cfg: Pix2PixZeroConfig,
    *,
    progress: bool = False,
) -> EditResult:
    """Reference pass with the captions, then the guided edit pass with ``caption + m·Δc``."""
    cond, uncond = text_states(sd, captions, cfg)
    check_direction(direction, cond)
    if direction.shape[0] not in (1, cond.shape[0]):
        raise ValueError(f"a direction of batch {direction.shape[0]} for {cond.shape[0]} captions")
    recon, maps = reference_pass(sd, x_t, cond, uncond, cfg.edit, progress=progress)
    cond_edit = cond + cfg.edit_multiplier * direction.to(cond)
    edited, losses = edit_pass(sd, x_t, cond_edit, uncond, maps, cfg.edit, progress=progress)
    return EditResult(edited, recon, tuple(losses))


def sdedit(
    sd: StableDiffusion,
    z0: Tensor,
    prompts: list[str],
    cfg: Pix2PixZeroConfig,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SDEdit: noise ``z0`` to ``sdedit_strength`` of the DDIM grid, denoise with ``prompts``
    (CFG with the empty negative prompt at the edit scale)."""
    grid = sd.scheduler.grid(cfg.edit.num_steps)
    keep = max(1, int(len(grid) * cfg.sdedit_strength))
    grid = grid[len(grid) - keep :]
    x = q_sample(sd, z0, int(grid[0]), per_sample_noise(z0.shape, generator, z0.device, z0.dtype))
    with torch.no_grad():
        cond = sd.encode_prompt(prompts)
        uncond = sd.encode_prompt([""] * len(prompts))
    ctx, scale = contexts(cond, uncond, cfg.edit.guidance_scale), cfg.edit.guidance_scale

    def model(x: Tensor, t: Tensor) -> Tensor:
        xx, tt = (x, t) if scale == 1.0 else (torch.cat([x, x]), torch.cat([t, t]))
        return guided_output(sd.unet, xx, tt, ctx, scale)

    clip = sd.scheduler.clip_sample_range if sd.scheduler.clip_sample else None
    return sample_ddim(
        model,
        x,
        sd.schedule,
        timesteps=grid,
        final_alpha_cumprod=sd.scheduler.final_alpha_cumprod(sd.schedule),
        prediction=sd.scheduler.prediction,
        clip_x0=clip,
    )
