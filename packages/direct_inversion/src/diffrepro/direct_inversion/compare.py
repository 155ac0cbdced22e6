"""Direct Inversion in ``diffrepro compare editing`` (the ``diffrepro.editing`` entry point).

The demo preset (w = 3, lambda = 0.5 over all steps, consistent grid, empty inversion prompt)
with ``steps`` inversion and editing steps. The seed draws the VAE posterior sample. The
reconstruction is the same blended editing pass run with the source prompt.
"""

from __future__ import annotations

import dataclasses

import torch

from diffrepro.core.compare import EditMethod, EditResult, count_unet_evals

from .config import PRESETS
from .editing import edit_latents, encode
from .inversion import invert


@torch.no_grad()
def direct_inversion_edit(
    sd, image, source: str, target: str, *, seed: int, steps: int
) -> EditResult:
    cfg = dataclasses.replace(PRESETS["demo"], steps=steps, inv_steps=steps)
    generator = torch.Generator(device=sd.device).manual_seed(seed)
    z0 = encode(sd, image, cfg, generator)
    with count_unet_evals(sd) as evals:
        buffer = invert(sd, z0, cfg.inv_steps, prompt=cfg.inversion_prompt, grid=cfg.grid)
        edited = edit_latents(sd, buffer, target, cfg, generator=generator)
    recon = edit_latents(sd, buffer, source, cfg, generator=generator)
    return EditResult(sd.decode_latents(edited), sd.decode_latents(recon), evals[0])


def editing_methods() -> list[EditMethod]:
    return [
        EditMethod(
            "direct_inversion",
            "Direct Inversion",
            direct_inversion_edit,
            package="diffrepro-direct-inversion",
        )
    ]
