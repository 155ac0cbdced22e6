"""The (w, λ) grid of the paper's editability-fidelity trade-off: one inversion, many edits.

The inversion does not depend on the target prompt, w or λ, so it runs once per image.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion

from .config import DirectInversionConfig
from .editing import edit_latents, encode
from .inversion import InversionBuffer, invert


@dataclass(frozen=True)
class SweepResult:
    """Edited latents and images for every (w, λ); ``z0`` and its VAE reconstruction."""

    ws: tuple[float, ...]
    lams: tuple[float, ...]
    buffer: InversionBuffer
    latents: dict[tuple[float, float], Tensor]
    images: dict[tuple[float, float], Tensor]
    reconstruction: Tensor  # decode(z0): the best any edit of this image can look like it


def parse_values(text: str, flag: str) -> tuple[float, ...]:
    """``"1,3,5"`` -> (1.0, 3.0, 5.0); a clear error naming ``flag`` otherwise."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{flag} expects comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{flag} is empty")
    return values


def sweep(
    sd: StableDiffusion,
    images: Tensor,
    prompt: str | list[str],
    cfg: DirectInversionConfig,
    ws: Sequence[float],
    lams: Sequence[float],
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> SweepResult:
    """Invert ``images`` once, then edit with every (w, λ) of the grid (``progress``: one line
    per edit with the elapsed time and an estimate of the time left)."""
    grid = {(w, lam): dataclasses.replace(cfg, guidance=w, lam=lam) for w in ws for lam in lams}
    with torch.no_grad():
        z0 = encode(sd, images, cfg, generator)
        buffer = invert(sd, z0, cfg.inv_steps, prompt=cfg.inversion_prompt, grid=cfg.grid)
        latents, start = {}, time.perf_counter()
        for i, (key, c) in enumerate(grid.items(), 1):
            latents[key] = edit_latents(sd, buffer, prompt, c, generator=generator)
            if progress:
                elapsed = time.perf_counter() - start
                eta = elapsed / i * (len(grid) - i)
                print(
                    f"sweep {i}/{len(grid)}: w={key[0]:g} lam={key[1]:g} "
                    f"elapsed {elapsed:.0f} s, eta {eta:.0f} s",
                    flush=True,
                )
        decoded = {key: sd.decode_latents(z) for key, z in latents.items()}
        return SweepResult(
            ws=tuple(ws),
            lams=tuple(lams),
            buffer=buffer,
            latents=latents,
            images=decoded,
            reconstruction=sd.decode_latents(z0),
        )
