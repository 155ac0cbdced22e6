"""Reading the image to edit: RGB in [-1, 1], shorter side resized, centre-cropped square."""

from __future__ import annotations

import os

import torch

from diffrepro.core.data import center_crop, load_image, resize_shorter


def load_square(path: str | os.PathLike, size: int) -> torch.Tensor:
    """(3, size, size) in [-1, 1]; a clear error for a missing or unreadable file."""
    image = load_image(path)
    return center_crop(resize_shorter(image, size), size)
