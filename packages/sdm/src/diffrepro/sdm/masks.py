"""MAT-style free-form masks (reimplemented from the description in the SDM spec §4).

Convention everywhere in this package: **1 = known pixel, 0 = hole** (MAT's convention); the
paper text writes 1 = missing, so convert at I/O boundaries with ``assert_mask``.

A mask starts all-known; random rectangles (two size classes) and random brush strokes are erased,
and the draw is repeated until the hole ratio lies strictly inside ``hole_range``. Brush widths
and radii are absolute pixels at 512² and are scaled by ``size / 512``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

# (rectangles < s/2, rectangles < s, brush strokes): MAT's maximum counts per mask set.
MASK_SETS = {"large-512": (5, 3, 9), "large-256": (4, 2, 8), "small-512": (3, 2, 4)}
MAX_DRAWS = 1000


@dataclass(frozen=True)
class MaskConfig:
    """Which MAT mask set to draw from, at which size, and the accepted hole-ratio range."""

    size: int = 32
    kind: str = "large"  # "large" or "small"
    hole_range: tuple[float, float] = (0.3, 0.7)


def mask_set(cfg: MaskConfig) -> tuple[int, int, int]:
    """MAT's counts: the 512 large set at ≥ 512 px, the 256 large set below; one small set."""
    if cfg.kind == "large":
        return MASK_SETS["large-512" if cfg.size >= 512 else "large-256"]
    if cfg.kind == "small":
        return MASK_SETS["small-512"]
    raise ValueError(f"unknown mask kind {cfg.kind!r}: use 'large' or 'small'")


def generate_mask(cfg: MaskConfig, rng: np.random.Generator) -> np.ndarray:
    """One (size, size) float32 mask with 1 = known, hole ratio strictly inside ``hole_range``."""
    low, high = cfg.hole_range
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"hole_range must satisfy 0 <= low < high <= 1, got {cfg.hole_range}")
    k_half, k_full, k_brush = mask_set(cfg)
    coef = min(low + high, 1.0)
    for _ in range(MAX_DRAWS):
        known = np.ones((cfg.size, cfg.size), dtype=bool)
        _erase_rectangles(known, int(k_half * coef), cfg.size // 2, rng)
        _erase_rectangles(known, int(k_full * coef), cfg.size, rng)
        known &= ~_brush_strokes(cfg.size, int(k_brush * coef), rng)
        if rng.random() < 0.5:
            known = known[::-1]
        if rng.random() < 0.5:
            known = known[:, ::-1]
        ratio = 1.0 - known.mean()
        if low < ratio < high:
            return np.ascontiguousarray(known, dtype=np.float32)
    raise ValueError(f"no mask with hole ratio in {cfg.hole_range} after {MAX_DRAWS} draws")


def generate_masks(cfg: MaskConfig, count: int, rng: np.random.Generator) -> torch.Tensor:
    """A (count, 1, size, size) float tensor of masks (1 = known)."""
    return torch.from_numpy(np.stack([generate_mask(cfg, rng) for _ in range(count)]))[:, None]


def hole_ratio(mask: torch.Tensor) -> torch.Tensor:
    """Fraction of hole pixels per mask of shape (B, 1, H, W)."""
    return 1.0 - mask.flatten(1).float().mean(1)


def assert_mask(mask: torch.Tensor, name: str = "mask") -> None:
    """Raise a ValueError unless ``mask`` is (B, 1, H, W) with values in {0, 1} (1 = known)."""
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, 1, H, W), got {tuple(mask.shape)}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} must hold only 0 (hole) and 1 (known)")


def load_mask(path: str | Path) -> torch.Tensor:
    """A mask image (white = known, black = hole; MAT's convention) as a (1, H, W) {0, 1} tensor."""
    from diffrepro.core.data import load_image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask not found: {path}")
    try:
        with Image.open(path) as image:
            if image.mode.startswith("I") or image.mode == "F":  # 16-bit / float: by its range
                grey = load_image(path)[0].numpy()
                return torch.from_numpy((grey >= 128 / 127.5 - 1).astype(np.float32))[None]
            array = np.asarray(image.convert("L"), dtype=np.float32)
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"cannot read mask image {path}: {err}") from None
    return torch.from_numpy((array >= 128).astype(np.float32))[None]


def _erase_rectangles(known: np.ndarray, max_count: int, max_size: int, rng) -> None:
    """Erase fewer than ``max_count`` rectangles, each side < ``max_size``, overhang ≤ half."""
    size = known.shape[0]
    for _ in range(int(rng.integers(max_count)) if max_count > 0 else 0):
        w, h = int(rng.integers(max_size)), int(rng.integers(max_size))
        x = int(rng.integers(-(w // 2), size - w + w // 2 + 1))
        y = int(rng.integers(-(h // 2), size - h + h // 2 + 1))
        known[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)] = False


def _brush_strokes(size: int, max_count: int, rng) -> np.ndarray:
    """Random polyline strokes with round joints (DeepFill v2 / MAT brush), True = stroke."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    scale = size / 512
    mean_angle, angle_range = 2 * math.pi / 5, 2 * math.pi / 15
    radius = math.sqrt(2) * size / 8
    for _ in range(int(rng.integers(max_count)) if max_count > 0 else 0):
        vertices = int(rng.integers(4, 18))
        width = max(1, int(rng.uniform(12, 48) * scale))
        low, high = (
            mean_angle - rng.uniform(0, angle_range),
            mean_angle + rng.uniform(0, angle_range),
        )
        points = [(float(rng.integers(size)), float(rng.integers(size)))]
        for i in range(vertices):
            angle = rng.uniform(low, high)
            angle = 2 * math.pi - angle if i % 2 == 0 else angle
            length = float(np.clip(rng.normal(radius, radius / 2), 0, 2 * radius))
            x0, y0 = points[-1]
            points.append(
                (
                    float(np.clip(x0 + length * math.cos(angle), 0, size)),
                    float(np.clip(y0 + length * math.sin(angle), 0, size)),
                )
            )
        draw.line(points, fill=255, width=width)
        for x, y in points:
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    return np.asarray(canvas) > 0
