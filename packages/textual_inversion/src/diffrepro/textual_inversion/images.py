"""The 3-5 concept images: read upright (EXIF orientation applied, spec §9.10), resized so the
shorter side is ``size`` (bicubic) and centre-cropped, in [-1, 1]."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from diffrepro.core.data import IMAGE_EXTENSIONS, center_crop, pil_to_tensor, resize_shorter


def load_concept_images(folder: str | os.PathLike, size: int) -> torch.Tensor:
    """Every image file directly in ``folder`` as one (N, 3, size, size) batch."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}")
    return torch.stack([_load(path, size) for path in files])


def _load(path: Path, size: int) -> torch.Tensor:
    try:
        with Image.open(path) as img:
            upright = ImageOps.exif_transpose(img)
            image = pil_to_tensor(_on_white(upright))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    return center_crop(resize_shorter(image, size), size)


def _on_white(img: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white (emoji renders are RGBA)."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")
