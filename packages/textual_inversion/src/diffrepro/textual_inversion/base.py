"""The frozen text-to-image model Textual Inversion personalises.

``load_base(model=..., checkpoint=..., tokenizer=...)`` opens, in this order:

- ``checkpoint`` a diffusers folder (``model_index.json``: SD 1.x / 2.x) through
  :meth:`StableDiffusion.load`, or a CompVis single file (``.ckpt`` / ``.safetensors``: SD 1.x)
  through the core CompVis loader, with the tokenizer folder ``tokenizer`` (CompVis files carry
  none) and SD 1.5's scheduler;
- ``model`` a zoo name (``emoji-t2i``: the core zoo's text-to-image model), or ``sd-tiny`` (the
  random tiny stack of the tests).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from diffrepro.core.models.stable_diffusion import SD1_SCHEDULER, StableDiffusion
from diffrepro.core.tokenizer import CLIPTokenizer

ZOO_MODEL = "emoji-t2i"
TINY_MODEL = "sd-tiny"


def load_base(
    *,
    model: str | None = ZOO_MODEL,
    checkpoint: str | os.PathLike | None = None,
    tokenizer: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> StableDiffusion:
    """The bundle named by ``checkpoint`` or ``model`` (see the module docstring), on ``device``."""
    if checkpoint is not None:
        return _from_path(Path(checkpoint), tokenizer).to(device)
    if model == TINY_MODEL:
        from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

        return tiny_stable_diffusion().to(device)
    if not model:
        raise ValueError("name a base model (--model NAME) or give --checkpoint PATH")
    return _from_zoo(model).to(device)


def _from_path(path: Path, tokenizer: str | os.PathLike | None) -> StableDiffusion:
    if path.is_dir():
        return StableDiffusion.load(path)
    if not path.is_file():
        raise FileNotFoundError(f"model checkpoint not found: {path}")
    if tokenizer is None:
        raise ValueError(
            f"{path} is a single-file checkpoint: give --tokenizer DIR (vocab.json + merges.txt)"
        )
    from diffrepro.core.models.compvis import load_compvis_checkpoint

    unet, vae, text = load_compvis_checkpoint(path)
    return StableDiffusion(unet, vae, text, CLIPTokenizer.from_pretrained(tokenizer), SD1_SCHEDULER)


def _from_zoo(name: str) -> StableDiffusion:
    try:
        from diffrepro.core import zoo
    except ImportError:
        raise ValueError(
            f"base model {name!r} comes from the core zoo, which this diffrepro-core does not "
            "have; give --checkpoint DIR (a diffusers Stable Diffusion folder) instead"
        ) from None
    loaded = zoo.load(name)
    if not isinstance(loaded, StableDiffusion):
        raise ValueError(f"zoo model {name!r} is not a text-to-image model")
    return loaded
