"""The demo's three experiments, each a function of a model and a batch of latents.

- :func:`reconstruction_table`: paper Table 1 in miniature (full-strength inversion then
  reconstruction; pixel MSE in [-1, 1] against the VAE-only floor).
- :func:`p_ablation`: the mixing weight (paper Fig. 5): float32 round-trip error (rounding grows
  as p^-2 per step) and the x / y gap of a generation from x_T = y_T (p = 1 lets them drift).
- :func:`caption_edits`: source caption -> target caption, EDICT against DDIM inversion +
  regeneration, scored by the judge (is the target emoji recognised?) and distance to the source.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import torch

from . import pipeline
from .config import EDICTConfig


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    value = float(torch.mean((a.detach().double().cpu() - b.detach().double().cpu()) ** 2))
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("a reconstruction error is not finite")
    return value


def in_dtype(sd, dtype: str):
    """The bundle in ``dtype`` (a copy unless it already has it)."""
    wanted = EDICTConfig(dtype=dtype).torch_dtype
    return sd if sd.dtype == wanted else copy.deepcopy(sd).to(dtype=wanted)


def reconstruction_table(
    sd,
    z0: torch.Tensor,
    images: torch.Tensor,
    captions: list[str],
    *,
    steps_list: tuple[int, ...],
    guidance: float,
    p: float,
    dtypes: tuple[str, ...] = ("float64", "float32"),
) -> list[dict]:
    """Rows of Table 1: VAE floor, then EDICT / DDIM x unconditional / conditional x S x dtype."""
    rows = [{"method": "VAE only (floor)", "condition": "-", "steps": 0, "dtype": "float64",
             "mse": mse(pipeline.decode(sd, z0), images), "latent_error": 0.0}]  # fmt: skip
    n = z0.shape[0]
    for dtype in dtypes:
        model = in_dtype(sd, dtype)
        for steps in steps_list:
            for method in ("edict", "ddim"):
                if method == "ddim" and dtype != "float64":
                    continue  # DDIM's error is the linearisation, not rounding
                for condition in ("unconditional", "conditional"):
                    uc = condition == "unconditional"
                    cfg = EDICTConfig(steps=steps, strength=1.0, guidance=1.0 if uc else guidance,
                                      p=p, method=method, dtype=dtype)  # fmt: skip
                    start = time.perf_counter()
                    x, _ = pipeline.reconstruct(model, z0, [""] * n if uc else captions, cfg)
                    rows.append({
                        "method": method.upper(), "condition": condition, "steps": steps,
                        "dtype": dtype, "mse": mse(pipeline.decode(model, x), images),
                        "latent_error": pipeline.relative_error(x, z0),
                        "seconds": time.perf_counter() - start,
                    })  # fmt: skip
    return rows


def p_ablation(
    sd,
    z0: torch.Tensor,
    captions: list[str],
    *,
    ps: tuple[float, ...],
    steps: int,
    guidance: float,
    generator: torch.Generator,
) -> list[dict]:
    """Per p: float32 round-trip latent error, and the x/y gap of a float32 generation."""
    model = in_dtype(sd, "float32")
    noise = torch.randn(z0.shape, generator=generator, dtype=torch.float32)
    rows = []
    for p in ps:
        cfg = EDICTConfig(steps=steps, strength=1.0, guidance=guidance, p=p, dtype="float32")
        x, _ = pipeline.reconstruct(model, z0, captions, cfg)
        gx, gy = pipeline.denoise(model, noise, noise.clone(), captions, cfg)
        rows.append({"p": p, "float32_round_trip_error": pipeline.relative_error(x, z0),
                     "generation_xy_gap": pipeline.relative_error(gy, gx)})  # fmt: skip
    return rows


@dataclasses.dataclass
class EditResult:
    rows: list[dict]
    images: dict[str, torch.Tensor]  # method -> decoded edits (N, 3, H, W)
    reconstruction: torch.Tensor  # EDICT reconstruction at the edit settings


def caption_edits(
    sd,
    z0: torch.Tensor,
    images: torch.Tensor,
    sources: list[str],
    targets: list[str],
    source_ids: list[int],
    target_ids: list[int],
    judge,
    cfg: EDICTConfig,
) -> EditResult:
    """EDICT and DDIM edits of every image; judge top-1 / top-5 success and source distance."""
    rows, decoded = [], {}
    with torch.no_grad():
        source_embed = judge.embed(images.float())
    for method in ("edict", "ddim"):
        run = dataclasses.replace(cfg, method=method)
        start = time.perf_counter()
        x, y = pipeline.edit(sd, z0, sources, targets, run)
        edited = pipeline.decode(sd, pipeline.select_output(x, y, run)).float().cpu()
        seconds = time.perf_counter() - start
        decoded[method] = edited
        with torch.no_grad():
            top = judge.identify(edited, k=5).cpu()
            cosine = (judge.embed(edited) * source_embed).sum(-1).cpu()
        for k in range(len(sources)):
            rows.append({
                "method": method.upper(), "source": sources[k], "target": targets[k],
                "top1": bool(top[k, 0] == target_ids[k]),
                "top5": bool((top[k] == target_ids[k]).any()),
                "still_source_top1": bool(top[k, 0] == source_ids[k]),
                "pixel_mse_to_source": mse(edited[k], images[k]),
                "judge_cosine_to_source": float(cosine[k]),
                "seconds_per_edit": seconds / len(sources),
            })  # fmt: skip
    x, y = pipeline.reconstruct(sd, z0, sources, cfg)
    recon = pipeline.decode(sd, pipeline.select_output(x, y, cfg)).float().cpu()
    return EditResult(rows, decoded, recon)


def summarise_edits(rows: list[dict]) -> dict[str, dict]:
    """Per method: success rates and mean distances."""
    out = {}
    for method in sorted({r["method"] for r in rows}):
        mine = [r for r in rows if r["method"] == method]
        n = len(mine)
        out[method] = {
            "top1_success": sum(r["top1"] for r in mine) / n,
            "top5_success": sum(r["top5"] for r in mine) / n,
            "pixel_mse_to_source": sum(r["pixel_mse_to_source"] for r in mine) / n,
            "judge_cosine_to_source": sum(r["judge_cosine_to_source"] for r in mine) / n,
            "seconds_per_edit": mine[0]["seconds_per_edit"],
            "edits": n,
        }
    return out
