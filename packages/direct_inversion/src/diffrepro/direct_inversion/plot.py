"""A small line/scatter plot drawn with Pillow (the package needs no plotting library)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from diffrepro.core.checkpoints import atomic_write

COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189))
Point = tuple[float, float]


def line_plot(
    series: Mapping[str, Sequence[Point]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    size: tuple[int, int] = (560, 400),
) -> Path:
    """One polyline with markers per series; axes span the data (finite values only)."""
    points = [p for line in series.values() for p in line]
    if not points or not all(math.isfinite(v) for p in points for v in p):
        raise ValueError("line_plot needs finite points")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi = _span(min(xs), max(xs))
    y_lo, y_hi = _span(min(ys), max(ys))
    width, height = size
    left, right, top, bottom = 70, width - 150, 50, height - 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)

    def at(p: Point) -> tuple[float, float]:
        u = left + (p[0] - x_lo) / (x_hi - x_lo) * (right - left)
        v = bottom - (p[1] - y_lo) / (y_hi - y_lo) * (bottom - top)
        return u, v

    draw.rectangle((left, top, right, bottom), outline="black")
    for frac in (0.0, 0.5, 1.0):
        x = x_lo + frac * (x_hi - x_lo)
        y = y_lo + frac * (y_hi - y_lo)
        u, v = at((x, y))
        draw.text((u - 12, bottom + 4), f"{x:.3g}", fill="black")
        draw.text((left - 45, v - 6), f"{y:.3g}", fill="black")
    draw.text(((left + right) // 2 - 60, height - 22), xlabel, fill="black")
    draw.text((4, top - 18), ylabel, fill="black")
    draw.text((4, 4), title, fill="black")
    for i, (label, line) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        uv = [at(p) for p in line]
        if len(uv) > 1:
            draw.line(uv, fill=colour, width=2)
        for u, v in uv:
            draw.ellipse((u - 3, v - 3, u + 3, v + 3), fill=colour)
        draw.text((right + 10, top + 16 * i), label, fill=colour)
    atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"))
    return Path(path)


def _span(lo: float, hi: float) -> tuple[float, float]:
    pad = (hi - lo) * 0.05 or max(abs(lo) * 0.05, 1e-6)
    return lo - pad, hi + pad
