"""Open a Stable Diffusion bundle by name or path, the way editing commands accept it.

``open_stable_diffusion(source, tokenizer=None, dtype=..., device=..., build=True)`` takes:

- a folder with ``model_index.json`` (SD 1.x / 2.x, diffusers layout): ``StableDiffusion.load``;
- a CompVis / LDM single file (``.ckpt`` / ``.safetensors`` / ...: SD 1.x) with a CLIP tokenizer
  folder ``tokenizer`` (the file carries none) and SD 1.x's scheduler;
- a zoo name (``emoji-t2i``), loaded through :func:`diffrepro.core.zoo.load` (built on first use
  unless ``build`` is false, then a missing model is a one-line ``FileNotFoundError``);
- ``sd-tiny``: the core's tiny random stack (tests and smoke runs only).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from diffrepro.core.models.stable_diffusion import StableDiffusion

TINY = "sd-tiny"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_dtype(name: str) -> torch.dtype:
    """``float32`` / ``bfloat16`` / ``float16`` as a torch dtype (``ValueError`` otherwise)."""
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r} (use one of {', '.join(DTYPES)})")
    return DTYPES[name]


def open_stable_diffusion(
    source: str | os.PathLike,
    *,
    tokenizer: str | os.PathLike | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    build: bool = True,
) -> StableDiffusion:
    """The bundle named by ``source`` (see the module docstring) on ``device`` in ``dtype``."""
    name = str(source)
    if name == TINY:
        from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

        return tiny_stable_diffusion(dtype=dtype).to(device)
    path = Path(source)
    if path.is_dir():
        return StableDiffusion.load(path, dtype=dtype, device=device)
    if path.is_file():
        return _single_file(path, tokenizer, dtype, device)
    if os.sep in name or path.suffix in SINGLE_FILE_SUFFIXES:
        raise FileNotFoundError(f"model checkpoint not found: {path}")
    return _zoo_model(name, build).to(device=device, dtype=dtype)


def _single_file(path: Path, tokenizer, dtype: torch.dtype, device) -> StableDiffusion:
    if path.suffix not in SINGLE_FILE_SUFFIXES:
        raise ValueError(
            f"checkpoint {path}: not a diffusers folder nor a CompVis file "
            f"({', '.join(SINGLE_FILE_SUFFIXES)})"
        )
    if tokenizer is None:
        raise ValueError(
            f"checkpoint {path} is a single CompVis file: give a tokenizer folder "
            "(vocab.json + merges.txt) with --tokenizer"
        )
    return StableDiffusion.from_compvis(path, tokenizer, dtype=dtype, device=device)


def _zoo_model(name: str, build: bool) -> StableDiffusion:
    from diffrepro.core import zoo

    model = zoo.load(name, build=build)
    if not isinstance(model, StableDiffusion):
        raise ValueError(f"zoo model {name!r} is not a text-to-image model")
    return model
