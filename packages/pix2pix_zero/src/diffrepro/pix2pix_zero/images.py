"""Image files in and out: square resize (LANCZOS, no crop, as the official code), PNG figures."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from diffrepro.core.data import load_image, pil_to_tensor, save_grid, to_pil


def read_image(path: Path, size: int) -> torch.Tensor:
    """An image file as a (1, 3, size, size) tensor in [-1, 1]."""
    image = load_image(path)
    if image.shape[-2:] != (size, size):
        image = pil_to_tensor(to_pil(image).resize((size, size), Image.Resampling.LANCZOS))
    return image[None]


def figure(rows: list[list[torch.Tensor]], path: Path) -> Path:
    """Rows of (3, H, W) images in [-1, 1] as one PNG grid."""
    ncol = max(len(r) for r in rows)
    flat = [img.float().clamp(-1, 1) for r in rows for img in r]
    return save_grid(torch.stack(flat), path, nrow=ncol)
