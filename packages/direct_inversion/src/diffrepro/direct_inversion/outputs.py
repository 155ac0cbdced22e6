"""What ``edit`` and ``sweep`` write: images, a figure, config.json and metrics.json."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import Tensor

from diffrepro.core.config import save_config
from diffrepro.core.data import save_grid, save_image
from diffrepro.core.metrics import psnr
from diffrepro.core.report import write_metrics

from .config import DirectInversionConfig
from .editing import EditResult
from .plot import line_plot
from .sweep import SweepResult


def distances(latents: Tensor, z0: Tensor, image: Tensor, source: Tensor) -> dict[str, float]:
    """Distance of an edit to its source: relative latent L2 and pixel PSNR (dB, range [-1, 1])."""
    values = {
        "latent_rel": float((latents - z0).norm() / z0.norm()),
        "psnr_to_source": float(psnr(image.clamp(-1, 1).float(), source.float()).mean()),
    }
    for name, value in values.items():
        if not math.isfinite(value) and not (name.startswith("psnr") and value == math.inf):
            raise ValueError(f"the edit produced a non-finite {name} ({value})")
    return values


def write_edit(
    out: Path, cfg: DirectInversionConfig, source: Tensor, result: EditResult, prompt: str
) -> dict[str, Any]:
    metrics: dict[str, Any] = {"prompt": prompt}
    metrics.update(distances(result.latents, result.buffer.z0, result.images, source))
    save_config(cfg, out / "config.json")
    save_image(result.images[0].clamp(-1, 1), out / "edited.png")
    save_image(source[0], out / "source.png")
    tiles = [source[0], result.reconstruction[0].clamp(-1, 1), result.images[0].clamp(-1, 1)]
    save_grid(tiles, out / "figure.png", nrow=3)
    write_metrics(out, metrics)
    return metrics


def write_sweep(
    out: Path, cfg: DirectInversionConfig, source: Tensor, result: SweepResult, prompt: str
) -> dict[str, Any]:
    rows = []
    for (w, lam), images in result.images.items():
        d = distances(result.latents[(w, lam)], result.buffer.z0, images, source)
        rows.append({"guidance": w, "lam": lam, **d})
    save_config(cfg, out / "config.json")
    tiles = [result.images[(w, lam)][0].clamp(-1, 1) for w in result.ws for lam in result.lams]
    save_grid(tiles, out / "grid.png", nrow=len(result.lams))
    series = {
        f"w={w:g}": [(r["lam"], r["latent_rel"]) for r in rows if r["guidance"] == w]
        for w in result.ws
    }
    line_plot(
        series,
        out / "tradeoff.png",
        xlabel="lambda",
        ylabel="latent distance to the source",
        title=f"Direct Inversion sweep: {prompt}",
    )
    metrics = {"prompt": prompt, "rows": rows}
    write_metrics(out, metrics)
    return metrics
