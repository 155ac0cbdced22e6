"""Which Stable Diffusion to edit with: a diffusers folder, a CompVis file, or a named model.

- a folder with ``model_index.json`` (SD 1.x / 2.x in diffusers layout): ``StableDiffusion.load``;
- a ``.safetensors`` / ``.ckpt`` / ``.pt`` single file in the CompVis layout (SD 1.x):
  ``StableDiffusion.from_compvis`` with a CLIP tokenizer folder (``--tokenizer``), since the file
  carries none, and SD 1.x's scheduler;
- ``emoji-t2i``: the core zoo's emoji text-to-image model (built and cached on first use);
- ``sd-tiny``: the core's tiny *random* SD stack (smoke tests only: its edits are noise).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from diffrepro.core.models.stable_diffusion import StableDiffusion

ZOO_MODELS = ("emoji-t2i",)
TINY = "sd-tiny"
COMPVIS_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64}


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"unknown --dtype {name!r} (use one of {', '.join(DTYPES)})")
    return DTYPES[name]


def load_model(
    source: str | os.PathLike,
    *,
    tokenizer: str | os.PathLike | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> StableDiffusion:
    """The bundle named by ``source`` (see the module docstring)."""
    name = str(source)
    if name in ZOO_MODELS:
        return zoo_model(name).to(device=device, dtype=dtype)
    if name == TINY:
        from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

        return tiny_stable_diffusion(dtype=dtype).to(device)
    path = Path(source)
    if path.is_dir():
        return StableDiffusion.load(path, dtype=dtype, device=device)
    if path.is_file():
        if path.suffix not in COMPVIS_SUFFIXES:
            raise ValueError(
                f"checkpoint {path}: not a diffusers folder nor a CompVis file "
                f"({', '.join(COMPVIS_SUFFIXES)})"
            )
        if tokenizer is None:
            raise ValueError(
                f"checkpoint {path} is a single CompVis file: pass --tokenizer DIR "
                "(a CLIP tokenizer folder with vocab.json and merges.txt)"
            )
        return StableDiffusion.from_compvis(path, tokenizer, dtype=dtype, device=device)
    raise FileNotFoundError(
        f"checkpoint not found: {name} (a diffusers folder, a CompVis file, "
        f"{' or '.join(ZOO_MODELS)}, or {TINY})"
    )


def zoo_model(name: str) -> StableDiffusion:
    """A zoo text-to-image model; a clear error when this diffrepro-core has no zoo."""
    try:
        from diffrepro.core import zoo
    except ImportError:
        raise ValueError(
            f"{name!r} is a core zoo model, but the installed diffrepro-core has no zoo "
            "(diffrepro.core.zoo); pass a diffusers folder or a CompVis file instead"
        ) from None
    return zoo.load(name)
