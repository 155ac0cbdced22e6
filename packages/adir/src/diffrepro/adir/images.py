"""Image files <-> tensors in [-1, 1], and the side-by-side figure."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def load_image(path: str | os.PathLike, size: int | None = None, *, grey: bool = False) -> Tensor:
    """(C, H, W) in [-1, 1]; with ``size`` the image is centre-cropped to a square and resized."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        image = Image.open(path).convert("L" if grey else "RGB")
    except OSError as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    if size is not None:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.float32)
    array = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1


def to_uint8(image: Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W, C) uint8 (grey images are replicated to RGB)."""
    image = image.detach().float().cpu().clamp(-1, 1)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return ((image + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def save_image(image: Tensor, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)
    return path


def figure(
    rows: Sequence[Sequence[Tensor]],
    titles: Sequence[str],
    path: str | os.PathLike,
    *,
    size: int = 128,
) -> Path:
    """A grid (one row per example, one column per title), each cell resized to ``size``."""
    header, pad = 14, 2
    grid = Image.new("RGB", (len(titles) * (size + pad), header + len(rows) * (size + pad)), "white")
    draw = ImageDraw.Draw(grid)
    for j, title in enumerate(titles):
        draw.text((j * (size + pad) + 2, 1), title, fill="black")
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            cell = image if image.shape[-1] == size else _resize(image, size)
            grid.paste(Image.fromarray(to_uint8(cell)), (j * (size + pad), header + i * (size + pad)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def _resize(image: Tensor, size: int) -> Tensor:
    return F.interpolate(image[None].float(), size=(size, size), mode="nearest")[0]
