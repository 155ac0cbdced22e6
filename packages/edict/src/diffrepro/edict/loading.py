"""Where the Stable Diffusion weights come from: a diffusers folder, a CompVis single file,
the core zoo's text-to-image model by name, or the tiny random stack (tests, CI).

Weights are cast to the requested dtype on load (fp16 files run in float32 or float64 on CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.core.models.stable_diffusion import SD1_SCHEDULER, StableDiffusion

TINY = "tiny-random"
ZOO_MODEL = "emoji-t2i"
SOURCES = f"a diffusers folder, a CompVis .safetensors/.ckpt file, {ZOO_MODEL!r} or {TINY!r}"


def load_model(
    source: str | os.PathLike | None,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    tokenizer: str | os.PathLike | None = None,
) -> StableDiffusion:
    """The SD bundle named by ``source`` (see the module docstring), in ``dtype`` on ``device``."""
    if source is None:
        raise ValueError(f"no model given: pass --checkpoint ({SOURCES})")
    name = str(source)
    if name == TINY:
        return tiny_stable_diffusion(seed=0, dtype=dtype).to(device)
    if name == ZOO_MODEL:
        return load_zoo_model(name, dtype=dtype, device=device)
    path = Path(source)
    if path.is_dir():
        return StableDiffusion.load(path, dtype=dtype, device=device)
    if path.is_file():
        return _load_compvis(path, tokenizer, dtype=dtype, device=device)
    raise FileNotFoundError(f"model not found: {path} (expected {SOURCES})")


def load_zoo_model(name: str, *, dtype: torch.dtype, device: str | torch.device):
    """The core zoo's text-to-image model; not built yet: one line naming the build command."""
    from diffrepro.core import zoo

    return zoo.load(name, device="cpu", build=False).to(device=device, dtype=dtype)


def _load_compvis(
    path: Path, tokenizer: str | os.PathLike | None, *, dtype: torch.dtype, device
) -> StableDiffusion:
    from diffrepro.core.models.compvis import load_compvis_checkpoint
    from diffrepro.core.tokenizer import CLIPTokenizer

    if tokenizer is None:
        raise ValueError(
            f"{path} is a single-file checkpoint, which carries no tokenizer: pass --tokenizer "
            "<folder with vocab.json and merges.txt> (e.g. an SD folder's tokenizer/)"
        )
    tok = CLIPTokenizer.from_pretrained(tokenizer)
    unet, vae, text = load_compvis_checkpoint(path, dtype=dtype)
    return StableDiffusion(unet, vae, text, tok, SD1_SCHEDULER).to(device)
