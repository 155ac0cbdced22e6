"""The demo's figures, drawn with Pillow (no plotting library): a labelled scatter plot for the
realism-fidelity trade-off, and a vertical stack of PNGs."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from diffrepro.core.checkpoints import atomic_write

LINE = (31, 119, 180)
OTHER = (214, 39, 40)


def scatter_plot(
    points: Mapping[str, tuple[float, float]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    connect: Sequence[str] = (),
    size: tuple[int, int] = (600, 420),
) -> Path:
    """One labelled marker per point; the ``connect`` points (in order) joined by a line."""
    values = [v for p in points.values() for v in p]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError("scatter_plot needs finite points")
    xs, ys = [p[0] for p in points.values()], [p[1] for p in points.values()]
    (x0, x1), (y0, y1) = _span(min(xs), max(xs)), _span(min(ys), max(ys))
    width, height = size
    left, right, top, bottom = 70, width - 30, 40, height - 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)

    def at(p):
        u = left + (p[0] - x0) / (x1 - x0) * (right - left)
        return u, bottom - (p[1] - y0) / (y1 - y0) * (bottom - top)

    draw.rectangle((left, top, right, bottom), outline="black")
    for frac in (0.0, 0.5, 1.0):
        u, v = at((x0 + frac * (x1 - x0), y0 + frac * (y1 - y0)))
        draw.text((u - 12, bottom + 4), f"{x0 + frac * (x1 - x0):.3g}", fill="black")
        draw.text((left - 50, v - 6), f"{y0 + frac * (y1 - y0):.3g}", fill="black")
    draw.text((left, height - 22), xlabel, fill="black")
    draw.text((4, top - 16), ylabel, fill="black")
    draw.text((4, 4), title, fill="black")
    line = [at(points[k]) for k in connect if k in points]
    if len(line) > 1:
        draw.line(line, fill=LINE, width=2)
    for label, p in points.items():
        u, v = at(p)
        colour = LINE if label in connect else OTHER
        draw.ellipse((u - 4, v - 4, u + 4, v + 4), fill=colour)
        draw.text((u + 6, v - 12), label, fill=colour)
    atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"))
    return Path(path)


def _span(lo: float, hi: float) -> tuple[float, float]:
    pad = (hi - lo) * 0.08 or max(abs(lo) * 0.05, 1e-6)
    return lo - pad, hi + pad


def stack_images(paths: Iterable[Path], out: Path, scale_to: int = 600) -> Path:
    """The PNGs one below the other, each scaled (nearest) to about ``scale_to`` px wide."""
    parts = []
    for p in paths:
        with Image.open(p) as img:
            img = img.convert("RGB")
            factor = max(1, scale_to // img.width)
            parts.append(img.resize((img.width * factor, img.height * factor), Image.NEAREST))
    width = max(p.width for p in parts)
    canvas = Image.new("RGB", (width, sum(p.height + 8 for p in parts)), "white")
    y = 0
    for part in parts:
        canvas.paste(part, (0, y))
        y += part.height + 8
    atomic_write(Path(out), lambda tmp: canvas.save(tmp, format="PNG"))
    return Path(out)
