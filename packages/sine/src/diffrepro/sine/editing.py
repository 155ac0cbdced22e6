"""Editing with model-based guidance: DDIM (100 steps, eta 0 in the paper) from fresh noise,
the pretrained model under the edit prompt and the empty prompt, each fine-tuned guide model
under its identifier prompt encoded by ITS OWN (fine-tuned) text encoder (spec pitfall 13).
Sizes other than the training one work with a patch-trained guide (its grid is resized)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.samplers import cfg_model
from diffrepro.core.seeded_sampling import sample_seeded

from .guidance import Guide, Window, model_guided


@dataclass
class FineTuned:
    """A fine-tuned bundle (shares VAE and tokenizer with the base) and its identifier caption."""

    sd: StableDiffusion
    caption: str


def make_guide(tuned: FineTuned, v: float, window: Window, prompt: str | None = None) -> Guide:
    with torch.no_grad():
        context = tuned.sd.encode_prompt(prompt if prompt is not None else tuned.caption)
    return Guide(tuned.sd.unet, context, v, window)


@torch.no_grad()
def edit(
    pretrained: StableDiffusion,
    prompt: str,
    guides: list[Guide],
    *,
    seeds: list[int],
    height: int,
    width: int,
    guidance_scale: float,
    num_steps: int,
    ddim_eta: float = 0.0,
) -> Tensor:
    """Latents of the edit, one per seed (sample k depends only on seed k). Without guides this
    is plain classifier-free guidance with the pretrained model."""
    n = len(seeds)
    cond = pretrained.encode_prompt(prompt).expand(n, -1, -1)
    uncond = pretrained.encode_prompt("").expand(n, -1, -1)
    batched = [Guide(g.unet, g.context.expand(n, -1, -1), g.v, g.window) for g in guides]
    if batched:
        model = model_guided(pretrained.unet, cond, uncond, batched, guidance_scale)
    else:
        model = cfg_model(pretrained.unet, cond, uncond, guidance_scale)
    return sample_seeded(
        pretrained, model, seeds, height=height, width=width, num_steps=num_steps,
        ddim_eta=ddim_eta,
    )  # fmt: skip
