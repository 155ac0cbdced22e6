"""Sampling prompts that use learned placeholders (classifier-free guided DDIM)."""

from __future__ import annotations

import torch

from diffrepro.core.models.stable_diffusion import StableDiffusion

from .placeholders import Placeholder, check_fits, expand_prompt


@torch.no_grad()
def sample_images(
    sd: StableDiffusion,
    prompt: str,
    placeholders: list[Placeholder] | tuple[Placeholder, ...],
    *,
    num_samples: int,
    num_steps: int,
    guidance_scale: float,
    seed: int = 0,
) -> torch.Tensor:
    """``num_samples`` images in [-1, 1] of ``prompt``; sample k uses the seed ``seed + k``."""
    text = expand_prompt(prompt, placeholders)
    check_fits(sd.tokenizer, [text])
    generators = [torch.Generator().manual_seed(seed + k) for k in range(num_samples)]
    latents = sd.sample(
        [text] * num_samples,
        num_steps=num_steps,
        guidance_scale=guidance_scale,
        generator=generators,
    )
    images = sd.decode_latents(latents).float().clamp(-1, 1).cpu()
    if not torch.isfinite(images).all():
        raise FloatingPointError("sampling produced non-finite images")
    return images
