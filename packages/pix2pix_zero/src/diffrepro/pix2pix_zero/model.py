"""Where the Stable Diffusion weights come from: a diffusers folder, a CompVis single file (with
a tokenizer folder), the core zoo's text-to-image model by name, or ``sd-tiny`` (the core's
random tiny stack, for smoke tests only)."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from diffrepro.core.models.stable_diffusion import SD1_SCHEDULER, StableDiffusion

ZOO_MODEL = "emoji-t2i"
TINY_MODEL = "sd-tiny"
COMPVIS_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def load_model(
    checkpoint: Path | None,
    name: str | None = None,
    *,
    tokenizer: Path | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> StableDiffusion:
    """The SD bundle from ``checkpoint`` (folder or CompVis file) or from the model ``name``."""
    if checkpoint is not None and name is not None:
        raise ValueError("give either --checkpoint or --model, not both")
    if checkpoint is not None:
        return _from_path(Path(checkpoint), tokenizer, dtype).to(device)
    name = name or ZOO_MODEL
    if name == TINY_MODEL:
        from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

        return tiny_stable_diffusion(seed=0, dtype=dtype).to(device)
    return zoo_model(name).to(device, dtype)


def _from_path(path: Path, tokenizer: Path | None, dtype: torch.dtype) -> StableDiffusion:
    if path.is_dir():
        return StableDiffusion.load(path, dtype=dtype)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix.lower() not in COMPVIS_SUFFIXES:
        raise ValueError(f"{path}: expected a diffusers folder or a CompVis weights file")
    if tokenizer is None:
        raise ValueError(f"{path} is a single file: pass --tokenizer DIR (vocab.json, merges.txt)")
    from diffrepro.core.models.compvis import load_compvis_checkpoint
    from diffrepro.core.tokenizer import CLIPTokenizer

    unet, vae, text = load_compvis_checkpoint(path, dtype=dtype)
    return StableDiffusion(unet, vae, text, CLIPTokenizer.from_pretrained(tokenizer), SD1_SCHEDULER)


def zoo_model(name: str) -> StableDiffusion:
    """A named text-to-image model of the core zoo (built on first use)."""
    zoo = zoo_module()
    known = list(zoo.entries())
    if name not in known:
        raise ValueError(f"unknown model {name!r} (zoo models: {', '.join(known)})")
    model = zoo.load(name)
    if not isinstance(model, StableDiffusion):
        raise ValueError(f"zoo entry {name!r} is not a Stable Diffusion-layout model")
    return model


def zoo_module():
    try:
        return importlib.import_module("diffrepro.core.zoo")
    except ImportError as err:
        raise ValueError(
            f"the core zoo (diffrepro.core.zoo, model {ZOO_MODEL!r}) is not available in this "
            "install; pass --checkpoint DIR|FILE or --model sd-tiny"
        ) from err
