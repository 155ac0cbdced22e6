"""The comparison's figures, drawn with Pillow: the image grid and the fidelity-alignment plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from diffrepro.core.checkpoints import atomic_write

TILE = 96
LABEL = 14
COLOURS = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip


def tile(array: np.ndarray | None) -> Image.Image:
    """A (3, H, W) image in [-1, 1] as a TILE-sized RGB tile; grey when missing (failed)."""
    if array is None:
        return Image.new("RGB", (TILE, TILE), (200, 200, 200))
    rgb = ((np.clip(array, -1, 1) + 1) * 127.5).round().astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(rgb).resize((TILE, TILE), Image.NEAREST)


def image_grid(rows: list[list[np.ndarray | None]], columns: list[str], path: Path) -> Path:
    """Rows = tasks, columns = ``columns`` (source first, then one per method), labelled."""
    width, height = len(columns) * (TILE + 2), LABEL + len(rows) * (TILE + 2)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, name in enumerate(columns):
        draw.text((j * (TILE + 2) + 2, 1), name[:15], fill=(0, 0, 0))
    for i, row in enumerate(rows):
        for j, array in enumerate(row):
            canvas.paste(tile(array), (j * (TILE + 2), LABEL + i * (TILE + 2)))
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
    return path


def scatter(
    points: dict[str, tuple[float, float]], path: Path, *, xlabel: str, ylabel: str
) -> Path:
    """One labelled marker per method at (x, y); axes span the finite points."""
    finite = {k: p for k, p in points.items() if all(math.isfinite(v) for v in p)}
    size, margin = (520, 400), 56
    canvas = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = margin, 20, size[0] - 20, size[1] - margin
    draw.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
    draw.text((x0, y1 + 24), xlabel, fill=(0, 0, 0))
    draw.text((4, 4), ylabel, fill=(0, 0, 0))
    if finite:
        xs, ys = [p[0] for p in finite.values()], [p[1] for p in finite.values()]
        (xlo, xhi), (ylo, yhi) = _span(min(xs), max(xs)), _span(min(ys), max(ys))
        for value, pos in ((xlo, x0), (xhi, x1 - 40)):
            draw.text((pos, y1 + 6), f"{value:.3g}", fill=(0, 0, 0))
        for value, pos in ((yhi, y0), (ylo, y1 - 12)):
            draw.text((4, pos), f"{value:.3g}", fill=(0, 0, 0))
        for k, (name, (x, y)) in enumerate(finite.items()):
            px = x0 + (x - xlo) / (xhi - xlo) * (x1 - x0)
            py = y1 - (y - ylo) / (yhi - ylo) * (y1 - y0)
            colour = COLOURS[k % len(COLOURS)]
            draw.ellipse((px - 5, py - 5, px + 5, py + 5), fill=colour)
            draw.text((px + 7, py - 6), name, fill=colour)
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
    return path


def _span(lo: float, hi: float) -> tuple[float, float]:
    pad = (hi - lo) * 0.1 or max(abs(hi), 1e-3) * 0.1
    return lo - pad, hi + pad
