"""Line plots drawn with Pillow, for demo figures (no plotting library needed).

``line_panel(series, ...)`` draws one panel (a PIL image): per series a polyline with markers
and, when given, a shaded band (e.g. mean ± std over seeds). ``save_panels(rows, path)`` tiles
panels row by row into one PNG, written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from diffrepro.core.checkpoints import atomic_write

COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189))
Point = tuple[float, float]


def line_panel(
    series: Mapping[str, Sequence[Point]],
    *,
    bands: Mapping[str, Sequence[tuple[float, float, float]]] | None = None,
    xlabel: str = "",
    title: str = "",
    size: tuple[int, int] = (360, 260),
) -> Image.Image:
    """One panel; ``bands[name]`` holds (x, low, high) triples drawn as a light area."""
    bands = bands or {}
    ys = [p[1] for line in series.values() for p in line]
    ys += [v for band in bands.values() for _, lo, hi in band for v in (lo, hi)]
    xs = [p[0] for line in series.values() for p in line]
    if not xs or not all(math.isfinite(v) for v in xs + ys):
        raise ValueError(f"plot {title!r} needs finite points")
    (x_lo, x_hi), (y_lo, y_hi) = _span(min(xs), max(xs)), _span(min(ys), max(ys))
    width, height = size
    left, right, top, bottom = 52, width - 10, 26, height - 42
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image, "RGBA")

    def at(x: float, y: float) -> tuple[float, float]:
        return (
            left + (x - x_lo) / (x_hi - x_lo) * (right - left),
            bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top),
        )

    draw.rectangle((left, top, right, bottom), outline="black")
    for frac in (0.0, 0.5, 1.0):
        u, v = at(x_lo + frac * (x_hi - x_lo), y_lo + frac * (y_hi - y_lo))
        draw.text((u - 10, bottom + 3), f"{x_lo + frac * (x_hi - x_lo):.3g}", fill="black")
        draw.text((2, v - 6), f"{y_lo + frac * (y_hi - y_lo):.3g}", fill="black")
    draw.text((left, 6), title, fill="black")
    draw.text(((left + right) // 2 - 30, bottom + 16), xlabel, fill="black")
    for i, name in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        band = bands.get(name, ())
        if len(band) > 1:
            outline = [at(x, hi) for x, _, hi in band] + [at(x, lo) for x, lo, _ in band[::-1]]
            draw.polygon(outline, fill=(*colour, 50))
        uv = [at(x, y) for x, y in series[name]]
        if len(uv) > 1:
            draw.line(uv, fill=colour, width=2)
        for u, v in uv:
            draw.ellipse((u - 2.5, v - 2.5, u + 2.5, v + 2.5), fill=colour)
        draw.text((left + 6 + 60 * i, bottom + 28), name, fill=colour)
    return image


def save_panels(rows: Sequence[Sequence[Image.Image]], path: str | os.PathLike) -> Path:
    """Tile ``rows`` of equally sized panels into one PNG (atomic write)."""
    if not rows or not rows[0]:
        raise ValueError("save_panels needs at least one panel")
    w, h = rows[0][0].size
    sheet = Image.new("RGB", (w * max(len(r) for r in rows), h * len(rows)), "white")
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            sheet.paste(panel, (j * w, i * h))
    atomic_write(Path(path), lambda tmp: sheet.save(tmp, format="PNG"))
    return Path(path)


def _span(lo: float, hi: float) -> tuple[float, float]:
    pad = (hi - lo) * 0.05 or max(abs(lo) * 0.05, 1e-6)
    return lo - pad, hi + pad
