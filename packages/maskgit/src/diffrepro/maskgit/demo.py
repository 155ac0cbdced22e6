"""``maskgit demo``: the CPU-scale reproduction on the emoji tokenizer + transformer.

Measures: tokenizer reconstruction and codebook usage; masked-token accuracy against the mask
ratio; class-conditional samples for T ∈ {1, 2, 4, 8, 16} (cosine) and every schedule at T = 8,
scored by the core judge (class consistency) and emoji-FD; transformer passes and wall time of
MaskGIT (T passes) against the raster-order AR baseline (N passes) at the same width;
inpainting, outpainting and class editing with a check that known tokens never change.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch

from diffrepro.core.config import save_config
from diffrepro.core.data import save_grid, save_image
from diffrepro.core.report import DemoResult, Headline, markdown_table, write_metrics
from diffrepro.core.repro import single_threaded_on_cpu
from diffrepro.maskgit.decoding import DecodeConfig, decode, decode_autoregressive
from diffrepro.maskgit.emoji_models import masked_accuracy
from diffrepro.maskgit.generation import (
    EDIT_DECODE,
    box_mask,
    edit,
    inpaint,
    outpaint_mask,
    sample,
)
from diffrepro.maskgit.metrics import codebook_usage, reconstruction_metrics
from diffrepro.maskgit.transformer import MaskGitTransformer

STEPS = (1, 2, 4, 8, 16)
SCHEDULES = ("cosine", "square", "linear", "square-root", "log")
RATIOS = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    per_class: int = 16
    speed_batch: int = 8
    speed_repeats: int = 3


def _judge(device: str, build: bool):
    """(classify fn or None, features fn, name) on images in [0, 1]. The zoo's judge is trained
    first when ``build`` (the full demo); the quick path uses it only if it is already built."""
    try:
        from diffrepro.core import zoo
        from diffrepro.core.zoo.judge import batched_features

        judge = zoo.load("emoji-judge", device=device, build=build).eval()
        return (
            lambda x: judge.classify(x * 2 - 1),
            lambda x: batched_features(judge, x * 2 - 1),
            "core emoji-judge",
        )
    except (ImportError, ValueError, FileNotFoundError):
        from diffrepro.core.metrics import TinyFeatureExtractor

        net = TinyFeatureExtractor().to(device)
        return None, lambda x: net(x * 2 - 1), "random-feature proxy (no judge installed)"


def _fd(features, a: torch.Tensor, b: torch.Tensor) -> float:
    from diffrepro.core.metrics import frechet_distance, gaussian_fit

    value = frechet_distance(*gaussian_fit(features(a)), *gaussian_fit(features(b)))
    if not math.isfinite(value):
        raise FloatingPointError("the Fréchet distance is not finite")
    return value


def _generate(model, tok, labels, cfg: DecodeConfig, seed: int, batch: int = 128):
    gen = torch.Generator().manual_seed(seed)
    out = [
        sample(model, tok, labels[i : i + batch], cfg, gen).images
        for i in range(0, len(labels), batch)
    ]
    return torch.cat(out)


def _score(images, labels, classify, features, real) -> dict[str, float]:
    row = {"fd": _fd(features, images, real)}
    if classify is not None:
        row["class_accuracy"] = float((classify(images).cpu() == labels.cpu()).double().mean())
    return row


def _speed(model: MaskGitTransformer, settings: DemoSettings, seed: int) -> dict[str, float]:
    """Wall time per image and passes: MaskGIT T = 8 vs a causal transformer of the same size."""
    mc = model.config
    ar = MaskGitTransformer(dataclasses.replace(mc, causal=True)).eval()
    b, n = settings.speed_batch, mc.num_tokens
    tokens = torch.full((b, n + 1), mc.mask_id)
    tokens[:, 0] = mc.class_id(0)

    def timed(fn):
        times = []
        for _ in range(settings.speed_repeats):
            start = time.perf_counter()
            res = fn()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2] / b, res.steps

    gen = torch.Generator().manual_seed(seed)
    kw = {"mask_id": mc.mask_id, "codebook_size": mc.codebook_size, "generator": gen}
    mg_time, mg_steps = timed(lambda: decode(model, tokens, config=DecodeConfig(8), **kw))
    ar_time, ar_steps = timed(lambda: decode_autoregressive(ar, tokens, **kw))
    return {
        "maskgit_seconds_per_image": mg_time,
        "maskgit_passes": mg_steps,
        "ar_seconds_per_image": ar_time,
        "ar_passes": ar_steps,
        "speedup": ar_time / mg_time,
        "pass_ratio": ar_steps / mg_steps,
    }


def _editing(model, tok, images, labels, out_dir: Path, seed: int) -> dict[str, int]:
    """Inpaint / outpaint / edit figures; counts of changed known tokens (must be 0)."""
    latent, f, size = model.config.latent_size, tok.config.downsample, images.shape[-1]
    b = len(images)
    centre = box_mask(latent, f, (3 * size // 8, 3 * size // 8, size // 4, size // 4))
    regions = {
        "inpaint": centre,
        "outpaint": outpaint_mask(latent, "right", latent // 2),
        "edit": centre,
    }
    gen = torch.Generator().manual_seed(seed)
    codes = tok.encode(images).flatten(1)
    changed, rows = {}, [images]
    c = model.config.num_classes
    for kind, region in regions.items():
        region = region.expand(b, latent, latent)
        if kind == "edit":
            target = (labels + 1) % c
            out = edit(model, tok, images, region, target, EDIT_DECODE, gen)
        else:
            out = inpaint(model, tok, images, region, labels, DecodeConfig(8), gen)
        known = ~region.flatten(1)
        changed[f"{kind}_known_tokens_changed"] = int(
            (out.tokens[:, 1:][known] != codes[known]).sum()
        )
        rows.append(out.images)
    save_grid(torch.cat(rows) * 2 - 1, out_dir / "editing.png", nrow=b)
    return changed


def _models(device: str, quick: bool, seed: int, out_dir: Path):
    if not quick:
        from diffrepro.maskgit.emoji_models import emoji_pair

        return emoji_pair(device)
    from diffrepro.maskgit.config import TINY
    from diffrepro.maskgit.vqgan import VQGAN

    torch.manual_seed(seed)
    model, tok = MaskGitTransformer(TINY.transformer), VQGAN(TINY.tokenizer)
    return model, tok, "quick smoke models (tiny preset, untrained)"


def _data(model, tok, quick: bool, seed: int):
    """(train images, their labels, eval images, eval labels) in [0, 1]."""
    if quick:
        gen = torch.Generator().manual_seed(seed + 1)
        x = torch.rand(12, 3, 16, 16, generator=gen)
        y = torch.arange(12) % model.config.num_classes
        return x, y, x, y
    from diffrepro.maskgit.data import emoji_dataset

    size = tok.config.downsample * model.config.latent_size
    x, y, _ = emoji_dataset(size, "train")
    hx, hy, _ = emoji_dataset(size, "heldout")
    return x, y, hx, hy


def demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = DemoSettings(per_class=2, speed_repeats=1) if quick else DemoSettings()
    start = time.perf_counter()
    with single_threaded_on_cpu(device):
        model, tok, source = _models(device, quick, seed, out_dir)
        model, tok = model.eval().cpu(), tok.eval().cpu()
        metrics = _run(model, tok, source, settings, out_dir, seed, quick, device)
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    write_metrics(out_dir, metrics)
    save_config(settings, out_dir / "demo_config.json")
    headline = _headline(metrics)
    report = _report(out_dir, metrics, headline)
    return DemoResult(report=report, headline=headline, metrics=metrics)


def _run(model, tok, source, settings, out_dir, seed, quick, device) -> dict:
    x, y, hx, hy = _data(model, tok, quick, seed)
    metrics: dict = {
        "models": source,
        "seed": seed,
        "model_config": dataclasses.asdict(model.config),
        "tokenizer_config": dataclasses.asdict(tok.config),
    }
    metrics["tokenizer"] = {**reconstruction_metrics(tok, hx), **codebook_usage(tok, x)}
    gen = torch.Generator().manual_seed(seed)
    codes = tok.encode(hx).flatten(1)
    metrics["masked_accuracy"] = {str(r): masked_accuracy(model, codes, hy, r, gen) for r in RATIOS}
    classify, features, judge_name = _judge("cpu", build=not quick)
    metrics["judge"] = judge_name
    c = model.config.num_classes
    labels = torch.arange(c).repeat_interleave(settings.per_class)
    if classify is not None:
        metrics["real_class_accuracy"] = float((classify(hx).cpu() == hy).double().mean())
    ablation = {}
    for steps in STEPS:
        images = _generate(model, tok, labels, DecodeConfig(num_iter=steps), seed)
        ablation[f"cosine_T{steps}"] = _score(images, labels, classify, features, x)
        if steps == 8:
            save_grid(
                images[:: max(1, settings.per_class // 4)] * 2 - 1,
                out_dir / "samples_T8.png",
                nrow=c if c <= 16 else None,
            )
        if steps == 1:
            save_grid(
                images[:: max(1, settings.per_class // 4)] * 2 - 1,
                out_dir / "samples_T1.png",
                nrow=c if c <= 16 else None,
            )
    for schedule in SCHEDULES[1:]:
        images = _generate(model, tok, labels, DecodeConfig(8, schedule=schedule), seed)
        ablation[f"{schedule}_T8"] = _score(images, labels, classify, features, x)
    metrics["ablation"] = ablation
    metrics["speed"] = _speed(model, settings, seed)
    pick = torch.arange(0, len(hx), max(1, len(hx) // 8))[:8]
    metrics["editing"] = _editing(model, tok, hx[pick], hy[pick], out_dir, seed)
    recon = tok.decode(tok.encode(hx[pick]))
    save_grid(torch.cat([hx[pick], recon]) * 2 - 1, out_dir / "reconstruction.png", nrow=len(pick))
    _figure(out_dir)
    return metrics


def _figure(out_dir: Path) -> None:
    """figure.png: reconstruction, T = 8 samples, T = 1 samples and editing stacked."""
    from diffrepro.core.data import load_image

    parts = [
        load_image(out_dir / n)
        for n in ("reconstruction.png", "samples_T8.png", "samples_T1.png", "editing.png")
    ]
    width = max(p.shape[2] for p in parts)
    padded = [torch.nn.functional.pad(p, (0, width - p.shape[2], 0, 4), value=1.0) for p in parts]
    save_image(torch.cat(padded, dim=1), out_dir / "figure.png")


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _headline(m: dict) -> tuple[Headline, ...]:
    ab, sp = m["ablation"], m["speed"]
    acc = "class_accuracy" in ab["cosine_T8"]
    rows = [
        Headline("FID (ImageNet 256, T = 8)", "6.18", "not measured", "no ImageNet at CPU scale"),
        Headline(
            "tokenizer PSNR / codebook used",
            "rFID 2.28 (ImageNet)",
            f"{_fmt(m['tokenizer']['recon_psnr_db'], 1)} dB / "
            f"{m['tokenizer']['codebook_used']:.0%}",
            "held-out emoji",
        ),
    ]
    if acc:
        rows.append(
            Headline(
                "class consistency T = 8 vs T = 1",
                "—",
                f"{ab['cosine_T8']['class_accuracy']:.0%} vs "
                f"{ab['cosine_T1']['class_accuracy']:.0%}",
                f"judge on real held-out: {m['real_class_accuracy']:.0%}",
            )
        )
    rows += [
        Headline(
            "FD, T = 8 cosine vs T = 1",
            "one-shot clearly worse",
            f"{_fmt(ab['cosine_T8']['fd'], 2)} vs {_fmt(ab['cosine_T1']['fd'], 2)}",
            m["judge"],
        ),
        Headline(
            "best schedule at T = 8",
            "cosine",
            min((k for k in ab if k.endswith("_T8")), key=lambda k: ab[k]["fd"]),
            "lowest FD",
        ),
        Headline(
            "passes: MaskGIT vs AR",
            "8 vs 256 (256 px)",
            f"{sp['maskgit_passes']} vs {sp['ar_passes']}",
            "same transformer width",
        ),
        Headline(
            "decoding speed-up vs AR",
            "up to 64×",
            f"{sp['speedup']:.1f}×",
            f"wall time, CPU, batch {DemoSettings.speed_batch}",
        ),
        Headline(
            "known tokens changed (inpaint/outpaint/edit)",
            "0",
            str(sum(m["editing"].values())),
            "bit-identical check",
        ),
    ]
    return tuple(rows)


def _report(out_dir: Path, m: dict, headline) -> Path:
    ab = m["ablation"]
    has_acc = "class_accuracy" in ab["cosine_T8"]
    lines = [
        "# MaskGIT — CPU-scale reproduction",
        "",
        f"Models: {m['models']}. Seed {m['seed']}; {m['seconds']} s in total.",
        "",
        "## Paper vs ours",
        "",
        markdown_table(headline),
        "",
        "## Decoding ablation (class-conditional samples, "
        f"{m['model_config']['num_classes']} classes)",
        "",
        "| setting | FD ↓ | class accuracy ↑ |",
        "|---|---|---|",
    ]
    for key, row in ab.items():
        accuracy = f"{row['class_accuracy']:.1%}" if has_acc else "n/a"
        lines.append(f"| {key} | {row['fd']:.3f} | {accuracy} |")
    lines += [
        "",
        f"FD is measured in the feature space of the {m['judge']} against the "
        "training images; it is not FID.",
        "",
        "## Masked-token accuracy against the mask ratio",
        "",
        "| ratio | " + " | ".join(m["masked_accuracy"]) + " |",
        "|---|" + "---|" * len(m["masked_accuracy"]),
        "| top-1 | " + " | ".join(f"{v:.1%}" for v in m["masked_accuracy"].values()) + " |",
        "",
        "## Speed",
        "",
        "```",
        json.dumps(m["speed"], indent=2),
        "```",
        "",
        "The AR baseline is the same transformer with a causal mask (untrained: only its "
        "speed is compared), one pass per token in raster order; no KV cache on either "
        "side.",
        "",
        "## Figures",
        "",
        "![figure](figure.png)",
        "",
        "Rows: held-out emoji and their reconstructions; samples at T = 8; samples at "
        "T = 1; editing (originals, inpainting of the centre, outpainting of the right "
        "half, class editing of the centre with the next class).",
        "",
        "## Honest scale",
        "",
        "32 px emoji, an 8×8 token grid (N = 64) with 128 codes, a 3-layer 96-wide "
        "transformer trained for minutes on a CPU, against the paper's 256 px ImageNet, "
        "N = 256, 1024 codes, 24 layers and 300 epochs on TPUs. The numbers above show the "
        "mechanism and the trends (steps, schedules, passes), not the paper's FID.",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
