"""The frame of a single-image editing demo (Imagic, SINE): one source emoji edited towards a
target emoji's text on the zoo's ``emoji-t2i``, scored by the zoo's ``emoji-judge``.

- :class:`EditDemoSetup`: the model, the judge's embedding and identity logits, the source image
  (and a 2x render of it for patch training) and the target emoji's index.
- :func:`zoo_setup` / :func:`quick_setup`: that setup from the zoo, or from the random tiny SD
  stack with a random feature network as the judge (a seconds-long smoke run; its numbers mean
  nothing; a red square on white as the source, the judge's class 1 as the target).
- :func:`run_edit_demo`: what every such demo does around its experiment (pick the setup, move
  it to the device, write ``config.json``, seed, time the experiment single-threaded on CPU);
  :func:`judge_scores`: fidelity (judge cosine to the source, optionally PSNR) and alignment
  (the target's probability and top-5 hit rate); :func:`rows_figure`: labelled image rows;
  :func:`report_tail` / :func:`write_report`: the report's "Scale" and "All metrics" sections.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from diffrepro.core.config import save_config
from diffrepro.core.data import make_grid, to_pil
from diffrepro.core.models.stable_diffusion import StableDiffusion

QUICK_LABEL = "sd-tiny (random) + random feature net (quick smoke run)"
ZOO_LABEL = "zoo emoji-t2i + emoji-judge"


@dataclass
class EditDemoSetup:
    sd: StableDiffusion
    embed: Callable[[torch.Tensor], torch.Tensor]
    identity_logits: Callable[[torch.Tensor], torch.Tensor]
    source: torch.Tensor  # (3, H, W) at the model's size
    source_high: torch.Tensor | None  # (3, 2H, 2W) or None
    target: int
    label: str


def zoo_setup(source: str, target: str, build: bool, *, high: bool = False) -> EditDemoSetup:
    """The zoo's emoji-t2i and emoji-judge, the ``source`` emoji (by name) and ``target``."""
    from diffrepro.core import emoji, zoo

    sd = zoo.load("emoji-t2i", build=build)
    judge = zoo.load("emoji-judge", build=build).eval()
    size = sd.unet.config.sample_size * sd.vae.downscale_factor
    pictures, _ = emoji.images(size, "all")
    item, goal = emoji.find(source), emoji.find(target)
    big = emoji.images(2 * size, "all")[0][item.index] if high else None
    return EditDemoSetup(
        sd, judge.embed, judge.identity_logits, pictures[item.index], big, goal.index, ZOO_LABEL
    )


def quick_setup(*, high: bool = False) -> EditDemoSetup:
    """The random tiny stack; the source a 32 px red square (its 64 px render with ``high``)."""
    from diffrepro.core.metrics import TinyFeatureExtractor
    from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

    sd = tiny_stable_diffusion()
    square = torch.ones(3, 64, 64)
    square[:, 16:48, 16:48] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    small = F.interpolate(square[None], size=(32, 32), mode="area")[0]
    features = TinyFeatureExtractor(dim=16)
    bank = torch.cat([small[None], torch.rand(7, 3, 32, 32) * 2 - 1])
    prototypes = F.normalize(features(bank), dim=-1)

    def logits(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(features(x), dim=-1) @ prototypes.T

    return EditDemoSetup(sd, features, logits, small, square if high else None, 1, QUICK_LABEL)


def run_edit_demo(
    out_dir: Path,
    settings: Any,
    experiment: Callable[[EditDemoSetup, Any, Path, int], tuple[dict, list]],
    *,
    setup_fn: Callable[[bool, bool], EditDemoSetup],
    device: str = "cpu",
    seed: int = 0,
    quick: bool = False,
    build_zoo: bool | None = None,
) -> tuple[EditDemoSetup, dict, list]:
    """``experiment(setup, settings, out_dir, seed) -> (metrics, rows)`` inside the common frame;
    ``setup_fn(quick, build_zoo)`` makes the setup (``build_zoo`` None: the environment's
    ``DIFFREPRO_ZOO_BUILD``, default on). ``metrics`` gains ``seconds`` and ``base_model``."""
    from diffrepro.core.repro import resolve_device, seed_everything, single_threaded_on_cpu

    if build_zoo is None:
        build_zoo = os.environ.get("DIFFREPRO_ZOO_BUILD", "1") != "0"
    setup = setup_fn(quick, build_zoo)
    dev = resolve_device(device)
    setup.sd.to(dev)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(settings, out_dir / "config.json")
    seed_everything(seed)
    start = time.perf_counter()
    with single_threaded_on_cpu(dev):
        metrics, rows = experiment(setup, settings, out_dir, seed)
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    metrics["base_model"] = setup.label
    return setup, metrics, rows


def judge_scores(
    setup: EditDemoSetup, images: torch.Tensor, *, psnr: bool = False
) -> dict[str, float]:
    """Fidelity and alignment of ``images`` (N, 3, H, W), means over N; non-finite raises."""
    with torch.no_grad():
        emb = F.normalize(setup.embed(images), dim=-1)
        ref = F.normalize(setup.embed(setup.source[None]), dim=-1)
        logits = setup.identity_logits(images)
    out = {"fidelity_cos": float((emb @ ref.T).mean())}
    if psnr:
        from diffrepro.core.metrics import psnr as psnr_db

        out["psnr_db"] = float(psnr_db(images, setup.source[None].expand_as(images)).mean())
    top5 = (logits.topk(5, dim=-1).indices == setup.target).any(-1).float()
    out["target_prob"] = float(logits.softmax(-1)[:, setup.target].mean())
    out["target_top5"] = float(top5.mean())
    bad = [k for k, v in out.items() if not torch.isfinite(torch.tensor(v))]
    if bad:
        raise FloatingPointError(f"non-finite demo metrics: {', '.join(bad)}")
    return out


def rows_figure(
    rows: list[tuple[str, torch.Tensor]], path: Path, *, label_width: int, label_chars: int
) -> Path:
    """One labelled row of images per ``(label, images)``, each image 64 px high (nearest
    upscaling, aspect kept), rows cut at the widest square row."""
    from PIL import Image, ImageDraw

    width = max(len(images) for _, images in rows)
    cell = 64
    canvas = Image.new("RGB", (label_width + width * (cell + 2), len(rows) * (cell + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(rows):
        h, w = images.shape[-2:]
        up = F.interpolate(images.float(), size=(cell, cell * w // h), mode="nearest")
        strip = to_pil(make_grid(up, nrow=len(up), padding=2))
        strip = strip.crop((0, 0, min(strip.width, width * (cell + 2)), strip.height))
        canvas.paste(strip, (label_width, r * (cell + 4)))
        draw.text((4, r * (cell + 4) + cell // 2 - 6), label[:label_chars], fill="black")
    canvas.save(path)
    return path


def report_tail(scale: str, metrics: dict) -> list[str]:
    """The report's last sections: the honest scale, then every metric as JSON."""
    return [
        "## Scale",
        "",
        scale,
        "",
        "## All metrics",
        "",
        "```json",
        json.dumps(metrics, indent=2, sort_keys=True),
        "```",
        "",
    ]


def write_report(out_dir: Path, lines: list[str]) -> Path:
    path = Path(out_dir) / "report.md"
    path.write_text("\n".join(lines))
    return path
