"""Input images as EDICT prepares them: centre-cropped to a square, resized with LANCZOS."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from diffrepro.core.data import pil_to_tensor


def load_square(path: str | os.PathLike, size: int) -> torch.Tensor:
    """An image file as a (1, 3, size, size) tensor in [-1, 1] (official preprocessing)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    return square(img, size)[None]


def square(img: Image.Image, size: int) -> torch.Tensor:
    """Centre crop to the shorter side, then LANCZOS resize to ``size`` x ``size``."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return pil_to_tensor(img.resize((size, size), Image.Resampling.LANCZOS))


def model_resolution(sd) -> int:
    """The pixel size the UNet was built for (sample_size x the VAE's downscale factor)."""
    size = sd.unet.config.sample_size or 64
    size = size[0] if isinstance(size, tuple) else size
    return int(size) * sd.vae.downscale_factor
