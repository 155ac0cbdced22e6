"""Inpainting masks (1 = observed, 0 = missing), seeded and deterministic."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor


def box_mask(size: int, fraction: float = 0.25, *, seed: int | None = None) -> Tensor:
    """A square hole covering ``fraction`` of the area: centred, or placed at random with a seed."""
    if not 0 < fraction < 1:
        raise ValueError(f"box fraction must be in (0, 1), got {fraction}")
    side = max(1, round(size * fraction**0.5))
    if seed is None:
        top = left = (size - side) // 2
    else:
        top, left = np.random.default_rng(seed).integers(0, size - side + 1, size=2)
    mask = torch.ones(size, size)
    mask[top : top + side, left : left + side] = 0
    return mask


def random_pixel_mask(size: int, missing: float = 0.5, *, seed: int = 0) -> Tensor:
    """Each pixel is missing independently with probability ``missing``."""
    if not 0 <= missing < 1:
        raise ValueError(f"missing fraction must be in [0, 1), got {missing}")
    keep = np.random.default_rng(seed).random((size, size)) >= missing
    return torch.from_numpy(keep.astype(np.float32))


def freeform_mask(size: int, strokes: int = 4, *, seed: int = 0) -> Tensor:
    """Free-form holes: thick random-walk brush strokes (in the style of DeepFill masks)."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(canvas)
    width = max(1, size // 10)
    for _ in range(strokes):
        point = rng.uniform(0, size, size=2)
        for _ in range(int(rng.integers(2, 6))):
            angle = rng.uniform(0, 2 * np.pi)
            step = rng.uniform(size / 8, size / 3) * np.array([np.cos(angle), np.sin(angle)])
            nxt = np.clip(point + step, 0, size - 1)
            draw.line([tuple(point), tuple(nxt)], fill=0, width=width, joint="curve")
            point = nxt
    return torch.from_numpy((np.asarray(canvas) > 127).astype(np.float32))
