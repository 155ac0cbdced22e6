"""``imagic demo``: Imagic on the zoo's emoji text-to-image model, judged by the zoo's emoji
judge (spec §4 at CPU scale).

Source: the "dog face" emoji (32 px, on white); target text "an emoji of a cat face". Stages A
and B run once; stage C sweeps eta over several seeds, tracing the fidelity-alignment trade-off:
fidelity = judge-embedding cosine to the source (and PSNR), alignment = the judge's probability
(and top-5 hit rate) of the target emoji "cat face". Ablations (spec §4): no stage B (the
pretrained UNet with the same e_opt / e_tgt interpolation), stage B with e_tgt directly (no
stage A: every eta is the same embedding). Control: the pretrained model on the target text.

``quick=True`` runs the same code on the random tiny stack with a random feature network as the
judge (a seconds-long smoke run; its numbers mean nothing).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from diffrepro.core import edit_demo as frame
from diffrepro.core.report import DemoResult, Headline, markdown_table, write_metrics
from diffrepro.core.seeded_sampling import decode_clamped

from .config import PRESETS, ImagicConfig
from .pipeline import fit
from .sampling import sample_embedding
from .stages import interpolate

SOURCE, TARGET = "dog face", "cat face"
CAPTION = "an emoji of a {}"


@dataclass(frozen=True)
class DemoSettings:
    imagic: ImagicConfig
    etas: tuple[float, ...]
    seeds: int


FULL = DemoSettings(PRESETS["demo"], (0.0, 0.25, 0.5, 0.75, 1.0, 1.25), 3)
QUICK = DemoSettings(PRESETS["tiny"], (0.0, 0.5, 1.0), 2)


def demo(
    out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False, build_zoo=None
) -> DemoResult:
    setup, metrics, rows = frame.run_edit_demo(
        out_dir, QUICK if quick else FULL, _experiment, setup_fn=_setup, device=device,
        seed=seed, quick=quick, build_zoo=build_zoo,
    )  # fmt: skip
    out_dir = Path(out_dir)
    figure = frame.rows_figure(rows, out_dir / "figure.png", label_width=220, label_chars=34)
    curve = _curve(metrics, out_dir / "tradeoff.png")
    write_metrics(out_dir, metrics)
    headline = _headline(metrics)
    settings = QUICK if quick else FULL
    report = _report(out_dir, setup, settings, metrics, headline, (figure, curve), seed, quick)
    return DemoResult(report, headline, metrics)


def _setup(quick: bool, build_zoo: bool) -> frame.EditDemoSetup:
    return frame.quick_setup() if quick else frame.zoo_setup(SOURCE, TARGET, build_zoo)


def _experiment(setup: frame.EditDemoSetup, settings: DemoSettings, out_dir: Path, seed: int):
    cfg, sd = settings.imagic, setup.sd
    prompt = CAPTION.format(TARGET)
    pretrained = copy.deepcopy(sd.unet)
    fitted = fit(sd, setup.source, prompt, cfg, out_dir / "imagic", seed)
    tuned = sd.unet
    no_a_cfg = dataclasses.replace(cfg, stage_a=False)
    sd.unet = copy.deepcopy(pretrained)
    no_a = fit(sd, setup.source, prompt, no_a_cfg, out_dir / "no_stage_a", seed)
    tuned_tgt = sd.unet
    seeds = [seed + k for k in range(settings.seeds)]
    size = cfg.resolution

    def run(unet, e_tgt, e_opt, eta):
        sd.unet = unet
        e = interpolate(e_tgt, e_opt, eta)
        z = sample_embedding(
            sd, e, seeds=seeds, height=size, width=size, guidance_scale=cfg.guidance_scale,
            num_steps=cfg.num_steps, ddim_eta=cfg.ddim_eta,
        )  # fmt: skip
        return decode_clamped(sd, z)

    metrics: dict = {
        "source": SOURCE,
        "target_text": prompt,
        "stage_a_loss": [fitted.losses_a[0], fitted.losses_a[-1]],
        "stage_b_loss": [fitted.losses_b[0], fitted.losses_b[-1]],
        "e_opt_minus_e_tgt_rms": float((fitted.e_opt - fitted.e_tgt).pow(2).mean().sqrt()),
        "seeds": seeds,
    }
    rows = [("source", setup.source[None])]
    curves = {"imagic": [], "no_stage_b": [], "no_stage_a": []}
    for eta in settings.etas:
        for name, unet in (("imagic", tuned), ("no_stage_b", pretrained)):
            images = run(unet, fitted.e_tgt, fitted.e_opt, eta)
            curves[name].append({"eta": eta, **_scores(setup, images)})
            if name == "imagic" or eta in (settings.etas[0], 1.0):
                rows.append((f"{name} eta={eta:g}", images))
    # without stage A, e_opt = e_tgt: every eta is the same embedding, sampled once
    images = run(tuned_tgt, no_a.e_tgt, no_a.e_opt, 1.0)
    scores = _scores(setup, images)
    curves["no_stage_a"] = [{"eta": eta, **scores} for eta in settings.etas]
    rows.append(("no_stage_a (any eta)", images))
    control = run(pretrained, fitted.e_tgt, fitted.e_tgt, 1.0)
    metrics["pretrained_target_text"] = _scores(setup, control)
    rows.append(("pretrained, target text", control))
    metrics["curves"] = curves
    sd.unet = tuned
    return metrics, rows


def _scores(setup: frame.EditDemoSetup, images) -> dict[str, float]:
    return frame.judge_scores(setup, images, psnr=True)


def _curve(metrics: dict, path: Path) -> Path:
    """Alignment (target probability) against fidelity (cosine to the source), one line per
    variant, eta written beside each point (a Pillow plot: no plotting dependency)."""
    from PIL import Image, ImageDraw

    w, h, pad = 520, 380, 50
    canvas = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(canvas)
    points = [p for c in metrics["curves"].values() for p in c]
    xs = [p["fidelity_cos"] for p in points]
    ys = [p["target_prob"] for p in points]
    x0, x1 = min(xs), max(xs) + 1e-6
    y0, y1 = min(ys), max(ys) + 1e-9

    def at(p):
        return (
            pad + (p["fidelity_cos"] - x0) / (x1 - x0) * (w - 2 * pad),
            h - pad - (p["target_prob"] - y0) / (y1 - y0) * (h - 2 * pad),
        )

    draw.rectangle([pad, pad, w - pad, h - pad], outline="black")
    colours = {"imagic": "blue", "no_stage_b": "red", "no_stage_a": "green"}
    for k, (name, curve) in enumerate(metrics["curves"].items()):
        pts = [at(p) for p in curve]
        draw.line(pts, fill=colours[name], width=2)
        for p, xy in zip(curve, pts):
            draw.text((xy[0] + 3, xy[1] - 10), f"{p['eta']:g}", fill=colours[name])
        draw.text((pad + 5, pad + 5 + 12 * k), name, fill=colours[name])
    draw.text((w // 2 - 80, h - pad + 15), "fidelity: judge cosine to source", fill="black")
    draw.text((5, pad - 20), "alignment: judge P(target emoji)", fill="black")
    draw.text((pad, h - pad + 2), f"{x0:.2f}", fill="black")
    draw.text((w - pad - 20, h - pad + 2), f"{x1:.2f}", fill="black")
    draw.text((2, h - pad - 10), f"{y0:.3f}", fill="black")
    draw.text((2, pad), f"{y1:.3f}", fill="black")
    canvas.save(path)
    return path


def _at(curve, eta):
    return next(p for p in curve if p["eta"] == eta)


def _headline(m: dict) -> tuple[Headline, ...]:
    c = m["curves"]
    im0, im1 = _at(c["imagic"], 0.0), _at(c["imagic"], 1.0)
    nb1, na1 = _at(c["no_stage_b"], 1.0), _at(c["no_stage_a"], 1.0)
    pre = m["pretrained_target_text"]
    return (
        Headline(
            "fidelity (judge cos to source), eta 0 -> 1",
            "eta=0 ~ input image; fidelity falls as eta grows (CLIP vs 1-LPIPS curve)",
            f"{im0['fidelity_cos']:.3f} -> {im1['fidelity_cos']:.3f}",
            f"seeds {m['seeds']}",
        ),
        Headline(
            "alignment (judge P(target)), eta 0 -> 1",
            "alignment rises with eta; eta 0.6-0.8 balances",
            f"{im0['target_prob']:.4f} -> {im1['target_prob']:.4f}",
            "chance 1/1457 = 0.0007",
        ),
        Headline(
            "ablation: no stage B at eta 1 (fidelity / P(target))",
            "loses the input's identity",
            f"{nb1['fidelity_cos']:.3f} / {nb1['target_prob']:.4f}",
            f"pretrained on target text: {pre['fidelity_cos']:.3f} / {pre['target_prob']:.4f}",
        ),
        Headline(
            "ablation: stage B with e_tgt (fidelity / P(target))",
            "reconstructs the input, fails to edit",
            f"{na1['fidelity_cos']:.3f} / {na1['target_prob']:.4f}",
            "every eta is the same embedding",
        ),
    )


def _report(out_dir, setup, settings, metrics, headline, figures, seed, quick) -> Path:
    cfg = settings.imagic
    scale = (
        "QUICK smoke run on a random tiny model: the numbers are meaningless."
        if quick
        else "CPU scale: the zoo's 32 px emoji text-to-image model (a few million parameters, "
        "trained for minutes; its samples are blurry) instead of Imagen / SD 1.4 at 512 px; "
        f"stage A {cfg.embed_steps} steps at lr {cfg.embed_lr:g} (paper SD: 1000 at 2e-3), "
        f"stage B {cfg.finetune_steps} steps at lr {cfg.finetune_lr:g} (paper SD: 1500 at "
        f"5e-7; the larger lr makes up for the shorter run), {settings.seeds} seeds per eta, "
        "the zoo's emoji judge instead of CLIP and LPIPS."
    )
    rows = [
        "| variant | eta | fidelity cos | PSNR dB | P(target) | target top-5 |",
        "|---" * 6 + "|",
    ]
    for name, curve in metrics["curves"].items():
        for p in curve:
            rows.append(
                f"| {name} | {p['eta']:g} | {p['fidelity_cos']:.3f} | {p['psnr_db']:.2f} | "
                f"{p['target_prob']:.4f} | {p['target_top5']:.2f} |"
            )
    lines = [
        "# Imagic: CPU-scale reproduction",
        "",
        f"Base model: {setup.label}. Seed {seed}. Wall time {metrics['seconds']} s.",
        "",
        f"What ran: '{SOURCE}' edited towards \"{metrics['target_text']}\"; stages A and B "
        "once, stage C over eta with several seeds; the two ablations of the paper and the "
        "pretrained model on the target text as a control.",
        "",
        f"![samples]({figures[0].name})",
        "",
        f"![trade-off]({figures[1].name})",
        "",
        "## Paper vs ours",
        "",
        markdown_table(headline),
        "",
        "The paper reports the trade-off as a plot (no table); its claims are qualitative.",
        "",
        "## The eta sweep",
        "",
        *rows,
        "",
        *frame.report_tail(scale, metrics),
    ]
    return frame.write_report(out_dir, lines)
