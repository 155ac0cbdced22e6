"""Pictures with Pillow only: stick-figure animations (GIF) and simple line plots (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189))


def stick_figure_gif(
    path: Path,
    clips: Sequence[np.ndarray],
    parents: Sequence[int],
    titles: Sequence[str],
    fps: float,
    *,
    head: int | None = None,
    size: int = 200,
    view: float = 35.0,
) -> Path:
    """Side-by-side views of joint positions ``(frames, joints, 3)``, one panel per clip;
    a circle marks joint ``head`` when given. The camera is turned ``view`` degrees about the
    vertical axis (a three-quarter view shows forward arm movement)."""
    frames = min(c.shape[0] for c in clips)
    turn = np.deg2rad(view)
    clips = [np.stack([c[..., 0] * np.cos(turn) + c[..., 2] * np.sin(turn), c[..., 1]], -1)
             for c in clips]  # fmt: skip
    every = np.concatenate([c[:frames].reshape(-1, 2) for c in clips])
    low, high = every.min(0), every.max(0)
    scale = 0.85 * size / max(high - low)
    centre = (low + high) / 2

    def to_pixel(p: np.ndarray, panel: int) -> tuple[float, float]:
        x = (p[0] - centre[0]) * scale + size / 2 + panel * size
        y = size / 2 + 8 - (p[1] - centre[1]) * scale
        return float(x), float(y)

    images = []
    for f in range(frames):
        image = Image.new("RGB", (size * len(clips), size + 16), "white")
        draw = ImageDraw.Draw(image)
        for panel, (clip, title) in enumerate(zip(clips, titles)):
            draw.text((panel * size + 4, 2), title, fill="black")
            for joint, parent in enumerate(parents):
                if parent >= 0:
                    draw.line(
                        [to_pixel(clip[f, parent], panel), to_pixel(clip[f, joint], panel)],
                        fill=COLORS[panel % len(COLORS)],
                        width=3,
                    )
            if head is not None:
                x, y = to_pixel(clip[f, head], panel)
                draw.ellipse([x - 7, y - 14, x + 7, y], outline="black", width=2)
        images.append(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def line_plot_png(
    path: Path,
    panels: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
    width: int = 900,
    panel_height: int = 170,
) -> Path:
    """Stacked panels, each ``(title, [(label, values), ...])``, drawn as polylines."""
    margin, top = 50, 22
    image = Image.new("RGB", (width, panel_height * len(panels)), "white")
    draw = ImageDraw.Draw(image)
    for row, (title, series) in enumerate(panels):
        y0 = row * panel_height + top
        h = panel_height - top - 14
        values = np.concatenate([np.asarray(v, dtype=np.float64) for _, v in series])
        low, high = float(values.min()), float(values.max())
        span = high - low if high > low else 1.0
        draw.rectangle([margin, y0, width - 10, y0 + h], outline=(160, 160, 160))
        draw.text((margin, y0 - 16), title, fill="black")
        draw.text((4, y0), f"{high:.3g}", fill="gray")
        draw.text((4, y0 + h - 10), f"{low:.3g}", fill="gray")
        legend_x = width - 10
        for k, (label, v) in enumerate(series):
            v = np.asarray(v, dtype=np.float64)
            xs = margin + np.arange(len(v)) * (width - 10 - margin) / max(1, len(v) - 1)
            ys = y0 + h - (v - low) / span * h
            color = COLORS[k % len(COLORS)]
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=color, width=2)
            legend_x -= 8 * len(label) + 16
            draw.text((legend_x, y0 - 16), label, fill=color)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
