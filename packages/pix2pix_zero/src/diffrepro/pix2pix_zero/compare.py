"""pix2pix-zero in ``diffrepro compare editing`` (the ``diffrepro.editing`` entry point).

The demo preset (regularised DDIM inversion, sentence-bank direction, cross-attention guidance
0.1, CFG 5) with ``steps`` inversion and editing steps. The source prompt stands in for the
BLIP caption; the edit direction comes from the template sentence banks of the words the two
prompts swap ("dog" -> "cat"). The reconstruction is the method's own reference pass with the
source caption (its UNet calls are part of the edit and are counted). The seed draws the VAE
posterior sample and the regulariser's noise.
"""

from __future__ import annotations

import dataclasses

import torch

from diffrepro.core.compare import EditMethod, EditResult, count_unet_evals
from diffrepro.core.compare.tasks import swapped_words

from .config import PRESETS
from .directions import Task
from .pipeline import encode, make_direction, start_latents, translate


def pix2pix_zero_edit(sd, image, source: str, target: str, *, seed: int, steps: int):
    preset = PRESETS["demo"]
    cfg = dataclasses.replace(
        preset,
        image_size=image.shape[-1],
        inversion=dataclasses.replace(preset.inversion, num_steps=steps),
        edit=dataclasses.replace(preset.edit, num_steps=steps),
    )
    old, new = swapped_words(source, target)
    task = Task(f"{old}2{new}", old, new)
    generator = torch.Generator(device=sd.device).manual_seed(seed)
    z0 = encode(sd, image, cfg, generator)
    with count_unet_evals(sd) as evals:
        x_t = start_latents(sd, z0, [source], cfg, generator)
        direction = make_direction(sd, [source], task, cfg)
        result = translate(sd, x_t, [source], direction, cfg)
    with torch.no_grad():
        edited, recon = sd.decode_latents(result.edited), sd.decode_latents(result.reconstruction)
    return EditResult(edited, recon, evals[0])


def editing_methods() -> list[EditMethod]:
    return [
        EditMethod(
            "pix2pix_zero", "pix2pix-zero", pix2pix_zero_edit, package="diffrepro-pix2pix-zero"
        )
    ]
