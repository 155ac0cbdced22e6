"""EDICT in ``diffrepro compare editing`` (the ``diffrepro.editing`` entry point).

The demo preset with ``steps`` DDIM steps (strength 0.8: int(0.8 steps) coupled steps), run in
the base model's dtype so every method shares one base (the paper's float64 is
``--set dtype=float64`` on ``edict edit``). The seed draws the VAE posterior sample. The
reconstruction denoises the same inversion with the source prompt.
"""

from __future__ import annotations

import dataclasses

import torch

from diffrepro.core.compare import EditMethod, EditResult, count_unet_evals

from .config import DTYPES, PRESETS
from .pipeline import decode, denoise, encode, invert, select_output


def edict_edit(sd, image, source: str, target: str, *, seed: int, steps: int) -> EditResult:
    names = {dtype: name for name, dtype in DTYPES.items()}
    cfg = dataclasses.replace(PRESETS["demo"], steps=steps, dtype=names[sd.dtype])
    generator = torch.Generator(device=sd.device).manual_seed(seed)
    z0 = encode(sd, image, cfg, generator)
    with count_unet_evals(sd) as evals:
        x, y = invert(sd, z0, source, cfg)
        edited = select_output(*denoise(sd, x, y, target, cfg), cfg)
    recon = select_output(*denoise(sd, x, y, source, cfg), cfg)
    return EditResult(decode(sd, edited), decode(sd, recon), evals[0])


def editing_methods() -> list[EditMethod]:
    return [EditMethod("edict", "EDICT", edict_edit, package="diffrepro-edict")]
