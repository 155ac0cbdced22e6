"""Image files <-> tensors in [-1, 1] (through ``diffrepro.core.data``) and the figure grid."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from diffrepro.core.checkpoints import atomic_write
from diffrepro.core.data import IMAGE_EXTENSIONS, center_crop, resize_shorter, to_pil
from diffrepro.core.data import load_image as load_rgb
from diffrepro.core.data import save_image as save_png

__all__ = ["IMAGE_EXTENSIONS", "figure", "load_image", "save_image"]


def load_image(path: str | os.PathLike, size: int | None = None) -> Tensor:
    """(3, H, W) in [-1, 1]; with ``size``: resized (shorter side) and centre-cropped square."""
    image = load_rgb(path)
    return image if size is None else center_crop(resize_shorter(image, size), size)


def save_image(image: Tensor, path: str | os.PathLike) -> Path:
    """A (C, H, W) image in [-1, 1] as an 8-bit PNG, written atomically."""
    return save_png(image, path)


def figure(
    rows: Sequence[Sequence[Tensor]],
    titles: Sequence[str],
    path: str | os.PathLike,
    *,
    size: int = 96,
) -> Path:
    """A grid with one row per example and one titled column per image kind (nearest resize)."""
    header, pad = 14, 2
    grid = Image.new(
        "RGB", (len(titles) * (size + pad), header + len(rows) * (size + pad)), "white"
    )
    draw = ImageDraw.Draw(grid)
    for j, title in enumerate(titles):
        draw.text((j * (size + pad) + 2, 1), title, fill="black")
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            cell = F.interpolate(image[None].float().cpu(), size=(size, size), mode="nearest")[0]
            cell = cell.expand(3, -1, -1) if cell.shape[0] == 1 else cell
            grid.paste(to_pil(cell), (j * (size + pad), header + i * (size + pad)))
    path = Path(path)
    atomic_write(path, lambda tmp: grid.save(tmp, format="PNG"))
    return path
