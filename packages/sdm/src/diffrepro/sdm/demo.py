"""``sdm demo``: SDM on the core emoji against the pixel DDPM + RePaint-style pasting.

The generator is the zoo entry ``sdm-emoji`` (trained on the emoji train split; built at first
use, about 7 minutes on one core); the diffusion baseline is the core ``emoji-ddpm`` with
``diffrepro.core.repaint.repaint_inpaint``, and ``emoji-judge`` scores identity. Both core
entries are loaded with ``build=False`` (never built here). The test images are every other
one of the 160 held-out emoji (80) under large MAT-style masks (1 = known), drawn once per
evaluation seed; every method and every SDM iteration count sees the same images, masks and
seeds. Photo crops (two scikit-image photos) are an out-of-domain check of SDM only.

``--quick`` (tests): a tiny SDM trained for 3 steps on 16 px emoji rendered on the spot, and a
randomly initialised DDPM and judge: seconds, no zoo model is built or loaded, nothing cached.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from diffrepro.core.config import config_to_dict, save_config
from diffrepro.core.report import DemoResult, Headline, markdown_table, write_metrics
from diffrepro.core.repro import resolve_device, seed_everything
from diffrepro.sdm.config import PRESETS, SDMConfig
from diffrepro.sdm.data import HELD_OUT_PHOTOS, emoji_images, photos, random_crops
from diffrepro.sdm.decoding import Step
from diffrepro.sdm.emoji_eval import MethodRun, repaint_run, score, sdm_run, white_fill
from diffrepro.sdm.figure import comparison_figure, iteration_figure
from diffrepro.sdm.masks import generate_masks, hole_ratio
from diffrepro.sdm.train import check_finite_weights

ITERATIONS = (1, 2, 4, 8)
HEADLINE_T = 4  # the compare method's (and DecodeConfig's default) iteration count
REPAINT_STEPS, QUICK_REPAINT_STEPS = (50,), (3,)
SEEDS = 3  # evaluation seeds: seed, seed + 1, seed + 2 (masks, SDM noise, DDPM noise)
PHOTO_CROPS, QUICK_PHOTO_CROPS = 64, 4
TEST_STRIDE = 2  # every other held-out emoji (80 of 160): keeps the demo to a few minutes
QUICK_TEST_EMOJI = 6
FIGURE_EXAMPLES = 6


@dataclass
class DemoModels:
    cfg: SDMConfig
    generator: nn.Module
    history: list[dict[str, float]]
    ddpm_unet: nn.Module
    schedule: object
    judge: nn.Module
    source: str


def quick_config() -> SDMConfig:
    tiny = PRESETS["tiny"]
    return dataclasses.replace(tiny, train=dataclasses.replace(tiny.train, steps=3))


def zoo_models(device: torch.device) -> DemoModels:
    """sdm-emoji (built at first use), emoji-ddpm and emoji-judge (never built here)."""
    from diffrepro.core import zoo
    from diffrepro.sdm.emoji_model import NAME, history

    generator = zoo.load(NAME, device=str(device))
    ddpm = zoo.load("emoji-ddpm", device=str(device), build=False)
    judge = zoo.load("emoji-judge", device=str(device), build=False)
    keys = ", ".join(f"{n} {zoo.get(n).key()}" for n in (NAME, "emoji-ddpm", "emoji-judge"))
    return DemoModels(
        PRESETS["emoji"],
        generator,
        history(zoo.path(NAME, build=False)),
        ddpm.unet.eval(),
        ddpm.schedule,
        judge.eval(),
        f"zoo entries {keys}",
    )


def quick_models(out_dir: Path, device: torch.device) -> DemoModels:
    """A tiny SDM trained for a few steps, a random tiny DDPM and a random judge."""
    from diffrepro.core.models.unet import UNetModel
    from diffrepro.core.schedules import Schedule
    from diffrepro.core.zoo.judge import EmojiJudge, JudgeConfig
    from diffrepro.core.zoo.tiny import TINY_UNET
    from diffrepro.sdm.train import train

    cfg = quick_config()
    images = list(emoji_images(cfg.resolution, "train", limit=8))
    result = train(
        cfg,
        lambda n, gen: random_crops(images, n, cfg.resolution, gen, flip=cfg.train.flip),
        out_dir / "train",
        device=device,
        seed=0,
        progress=False,
        resume=False,
    )
    torch.manual_seed(0)
    unet = UNetModel(dataclasses.replace(TINY_UNET, image_size=cfg.resolution)).to(device)
    judge = EmojiJudge(JudgeConfig()).to(device)
    schedule = Schedule.named("linear", 1000)
    source = "quick: tiny SDM (3 steps), random DDPM and judge"
    return DemoModels(cfg, result.generator, result.history, unet.eval(), schedule, judge, source)


def test_set(cfg: SDMConfig, quick: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out emoji and their indices into ``emoji.emoji_set()`` (the judge's targets)."""
    from diffrepro.core import emoji

    if quick:
        image = emoji_images(cfg.resolution, "heldout", limit=QUICK_TEST_EMOJI)
        return image, torch.tensor([e.index for e in emoji.select("heldout")[: len(image)]])
    image = emoji_images(cfg.resolution, "heldout")[::TEST_STRIDE]
    return image, torch.tensor([e.index for e in emoji.select("heldout")[::TEST_STRIDE]])


def evaluate_seed(
    models: DemoModels, image: torch.Tensor, targets: torch.Tensor, seed: int, quick: bool
) -> tuple[dict[str, dict[str, float]], dict[str, MethodRun], torch.Tensor]:
    """Every method's scores for one evaluation seed (same masks for all), runs and masks."""
    mask0 = generate_masks(models.cfg.masks, len(image), np.random.default_rng(seed))
    mask0 = mask0.to(image.device)
    runs = {f"sdm T={t}": sdm_run(models.generator, image, mask0, t, seed) for t in ITERATIONS}
    for steps in QUICK_REPAINT_STEPS if quick else REPAINT_STEPS:
        runs[f"repaint {steps} steps"] = repaint_run(
            models.ddpm_unet, models.schedule, image, mask0, steps, seed
        )
    runs["white fill"] = white_fill(image, mask0)
    scores = {name: score(run, image, mask0, models.judge, targets) for name, run in runs.items()}
    scores["mask"] = {"mean_hole_ratio": float(hole_ratio(mask0.cpu()).mean())}
    return scores, runs, mask0


def out_of_domain(models: DemoModels, seed: int, quick: bool, device) -> dict[str, float]:
    """SDM (T = 1 and 4) on crops of held-out photos: hole PSNR and calibration."""
    from diffrepro.sdm.evaluate import calibration, hole_psnr

    count = QUICK_PHOTO_CROPS if quick else PHOTO_CROPS
    crops = random_crops(
        photos(HELD_OUT_PHOTOS), count, models.cfg.resolution, torch.Generator().manual_seed(seed)
    ).to(device)
    mask0 = generate_masks(models.cfg.masks, count, np.random.default_rng(seed)).to(device)
    scores = {}
    for t in (1, HEADLINE_T):
        last = sdm_run(models.generator, crops, mask0, t, seed).steps[-1]
        scores[f"sdm T={t} hole_psnr_db"] = hole_psnr(last.image, crops, mask0)
        scores[f"sdm T={t} calibration_spearman"] = calibration(last.mean, last.sigma, crops, mask0)
    return scores


def summarise(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict]]:
    """mean, sample std and the per-seed values of every score of every method."""
    summary: dict[str, dict[str, dict]] = {}
    for method, row in per_seed[0].items():
        summary[method] = {}
        for key in row:
            values = [s[method][key] for s in per_seed]
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            summary[method][key] = {"mean": float(np.mean(values)), "std": std, "per_seed": values}
    return summary


PAIRS = (
    ("sdm T=4", "sdm T=1"),
    ("sdm T=8", "sdm T=4"),
    ("sdm T=2", "sdm T=1"),
)


def paired_differences(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict]:
    """Per-seed differences a − b of PSNR and judge distance for the claims that depend on the
    seed: more iterations vs fewer, and SDM (T = 4) vs each RePaint baseline."""
    methods = per_seed[0]
    pairs = list(PAIRS) + [(f"sdm T={HEADLINE_T}", m) for m in methods if m.startswith("repaint")]
    out = {}
    for a, b in pairs:
        out[f"{a} minus {b}"] = {
            key: [s[a][key] - s[b][key] for s in per_seed]
            for key in ("hole_psnr_db", "hole_ssim", "judge_distance", "identity_top1")
        }
    return out


def loss_windows(history: list[dict[str, float]]) -> dict[str, list[float]]:
    """Mean of each loss term over the first and the last 10 % of training steps."""
    window = max(1, len(history) // 10)
    parts = (history[:window], history[-window:])
    return {key: [float(np.mean([h[key] for h in part])) for part in parts] for key in history[0]}


def demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    """Load (or, quick, train) the models, run the fair comparison over the seeds, report."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch_device = resolve_device(device)
    seed_everything(seed)
    models = quick_models(out_dir, torch_device) if quick else zoo_models(torch_device)
    check_finite_weights(models.generator.state_dict(), "the SDM generator")
    save_config(models.cfg, out_dir / "config.json")
    image, targets = test_set(models.cfg, quick)
    image = image.to(torch_device)
    seeds = [seed + i for i in range(SEEDS)]
    per_seed, first_runs, first_mask = [], None, None
    for s in seeds:
        scores, runs, mask0 = evaluate_seed(models, image, targets, s, quick)
        per_seed.append(scores)
        if first_runs is None:
            first_runs, first_mask = runs, mask0
    summary = summarise(per_seed)
    ood = summarise([{"photos": out_of_domain(models, s, quick, torch_device)} for s in seeds])
    losses = loss_windows(models.history)
    require_finite_results(summary, losses)
    require_finite_results(ood, {})
    paired = paired_differences(per_seed)
    metrics = {
        "config": config_to_dict(models.cfg),
        "seeds": seeds,
        "test_images": len(image),
        "scores": summary,
        "paired_differences_per_seed": paired,
        "out_of_domain_photo_crops": ood["photos"],
        "losses_first_last_window": losses,
        "training_steps": len(models.history),
        "generator_parameters": sum(p.numel() for p in models.generator.parameters()),
        "models": models.source,
        "quick": quick,
    }
    write_metrics(out_dir, metrics)
    figures = _figures(out_dir, image, first_mask, first_runs)
    headline = _headline(summary)
    report = _write_report(out_dir, models, metrics, headline, figures, time.perf_counter() - start)
    return DemoResult(report=report, headline=headline, metrics=metrics)


def require_finite_results(scores: dict, losses: dict[str, list[float]]) -> None:
    """FloatingPointError naming the first NaN / infinite score or loss: never a report row."""
    values = []
    for method, row in scores.items():
        for key, value in row.items():
            numbers = value["per_seed"] if isinstance(value, dict) else [value]
            values += [(f"{method} {key}", v) for v in numbers]
    values += [(f"training loss {key}", v) for key, pair in losses.items() for v in pair]
    for name, value in values:
        if not math.isfinite(value):
            raise FloatingPointError(f"sdm demo: {name} is {value}; no report is written")


def _first(step: Step, n: int) -> Step:
    fields = ("image", "mask", "uncertainty", "mean", "sigma")
    return dataclasses.replace(step, **{name: getattr(step, name)[:n] for name in fields})


def _figures(out_dir: Path, image, mask0, runs: dict[str, MethodRun]) -> tuple[Path, Path]:
    n = FIGURE_EXAMPLES
    iterations = iteration_figure(
        image[:n],
        mask0[:n],
        [_first(s, n) for s in runs[f"sdm T={HEADLINE_T}"].steps],
        out_dir / "iterations.png",
    )
    columns = [torch.where(mask0[:n].bool(), image[:n], -1.0)]
    columns += [run.image[:n] for name, run in runs.items() if name != "white fill"]
    columns.append(image[:n])
    return iterations, comparison_figure(columns, out_dir / "comparison.png")


def _fmt(entry: dict, digits: int = 2) -> str:
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"


def _headline(summary: dict) -> tuple[Headline, ...]:
    one, many = summary["sdm T=1"], summary[f"sdm T={HEADLINE_T}"]
    repaint = next(v for k, v in summary.items() if k.startswith("repaint"))
    repaint_name = next(k for k in summary if k.startswith("repaint"))
    return (
        Headline(
            "FID / P-IDS / U-IDS, Places2 512² large",
            "1.68 / 25.33 / 39.30",
            "not measured",
            "no Inception weights offline; 32 px emoji instead",
        ),  # fmt: skip
        Headline(
            f"iterations 1 → {HEADLINE_T}: quality",
            "FID 3.03 → 2.45 (1 → 3 it., separately trained)",
            f"hole PSNR {_fmt(one['hole_psnr_db'])} → {_fmt(many['hole_psnr_db'])} dB; judge "
            f"distance {_fmt(one['judge_distance'], 3)} → {_fmt(many['judge_distance'], 3)}",
            "one model, test-time T, mean ± std over 3 seeds",
        ),
        Headline(
            "uncertainty calibration",
            "qualitative only",
            f"Spearman {_fmt(many['calibration_spearman'])} over all hole pixels, "
            f"{_fmt(many['calibration_foreground_spearman'])} over non-white ones "
            f"(T = {HEADLINE_T})",
            "σ vs |μ − x|; white = the likelihood's open top bin",
        ),
        Headline(
            "SDM vs diffusion inpainting",
            "PSM FID 1.68 vs LDM 2.76 / SD 2.11; ≈ 250 ms vs 3000 ms",
            f"hole PSNR {_fmt(many['hole_psnr_db'])} dB with {HEADLINE_T} evaluations vs "
            f"{_fmt(repaint['hole_psnr_db'])} dB with {repaint['evals_per_image']['mean']:.0f}",
            f"{repaint_name}: core emoji-ddpm + RePaint-style pasting",
        ),
    )


SCORE_KEYS = (
    "hole_psnr_db",
    "hole_ssim",
    "judge_distance",
    "identity_top1",
    "calibration_spearman",
    "calibration_foreground_spearman",
    "evals_per_image",
)


def _score_table(summary: dict) -> str:
    rows = ["| method | " + " | ".join(SCORE_KEYS) + " |", "|---" * (len(SCORE_KEYS) + 1) + "|"]
    for method, row in summary.items():
        if method == "mask":
            continue
        cells = [_fmt(row[k], 3) if k in row else "—" for k in SCORE_KEYS]
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _per_seed_table(summary: dict, seeds: list[int]) -> str:
    rows = ["| method | " + " | ".join(f"PSNR seed {s}" for s in seeds) + " |"]
    rows.append("|---" * (len(seeds) + 1) + "|")
    for method, row in summary.items():
        if "hole_psnr_db" in row:
            cells = " | ".join(f"{v:.3f}" for v in row["hole_psnr_db"]["per_seed"])
            rows.append(f"| {method} | {cells} |")
    return "\n".join(rows)


def _paired_table(paired: dict) -> str:
    keys = ("hole_psnr_db", "hole_ssim", "judge_distance", "identity_top1")
    rows = ["| a − b | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in paired.items():
        cells = [" / ".join(f"{v:+.3f}" for v in row[k]) for k in keys]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _write_report(out_dir, models: DemoModels, metrics, headline, figures, seconds) -> Path:
    cfg, tc, net = models.cfg, models.cfg.train, models.cfg.network
    params = metrics["generator_parameters"] / 1e6
    losses = metrics["losses_first_last_window"]
    loss_rows = ["| loss | first 10 % | last 10 % |", "|---|---|---|"]
    loss_rows += [f"| {k} | {v[0]:.3f} | {v[1]:.3f} |" for k, v in losses.items()]
    ood = metrics["out_of_domain_photo_crops"]
    ood_rows = ["| score | mean ± std |", "|---|---|"]
    ood_rows += [f"| {k} | {_fmt(v, 3)} |" for k, v in ood.items()]
    hole = metrics["scores"]["mask"]["mean_hole_ratio"]
    text = f"""# SDM / PSM — CPU-scale reproduction on emoji

**What was run.** Models: {models.source}. A {params:.2f} M-parameter SDM generator
({net.resolution}² images, {net.levels} levels from {net.base_channels} channels, UGA at
{", ".join(f"{r}²" for r in net.attention_resolutions)}, StyleGAN2-modulated decoder), trained
for {metrics["training_steps"]} steps at batch {tc.batch_size} on the emoji train split with
{tc.unroll} unrolled iterations, λ = (adv {tc.adv_weight}, perceptual {tc.perceptual_weight},
NLL {tc.nll_weight}) and the pixel + random-conv perceptual substitute. Test:
{metrics["test_images"]} held-out emoji (every other one of the split's 160) under large
MAT-style masks (1 = known; mean hole ratio {hole["mean"]:.3f}), redrawn for each evaluation
seed {metrics["seeds"]}; every method sees the same images, masks and seeds.
SDM decodes with the {cfg.decode.schedule} schedule and α = {cfg.decode.alpha}.
Wall time {seconds:.0f} s.

## Paper vs ours

{markdown_table(headline)}

**Honest statement of scale.** The paper trains a 74 M-parameter model on Places2 / CelebA-HQ
at 512² for tens of millions of images on 8 GPUs and scores Inception features of 36,500 / 2,993
images. Ours is a {params:.2f} M model trained for minutes on one CPU core on 32 px emoji; no
number here is comparable with the paper's. The diffusion baseline is the zoo's weak pixel
DDPM (its samples are textures), so "SDM beats diffusion" here says little about LDM or SD.

## Scores on held-out emoji (mean ± std over seeds {metrics["seeds"]})

{_score_table(metrics["scores"])}

judge_distance = 1 − cos of the zoo emoji-judge's identity embeddings of result and ground
truth; identity_top1 = the judge names the right emoji (of all 1,457) for the result; hole PSNR
(data range 1 in [0, 1] units) and SSIM over the hole pixels; calibration = Spearman of SDM's σ
vs |μ − x| over hole pixels; evals_per_image = generator / denoiser forward rows per image.
"white fill" paints the hole white (the emoji background) with no network.

Hole PSNR per seed:

{_per_seed_table(metrics["scores"], metrics["seeds"])}

Paired per-seed differences (a − b; same images, masks and seeds):

{_paired_table(metrics["paired_differences_per_seed"])}

## Out of domain: crops of held-out photos ({", ".join(HELD_OUT_PHOTOS)})

{chr(10).join(ood_rows)}

## Training losses (summed over unrolled iterations)

{chr(10).join(loss_rows)}

## Figures

![comparison]({figures[1].name})

Columns: masked input (hole black), SDM T = {", ".join(str(t) for t in ITERATIONS)}, the RePaint
baseline, ground truth (seed {metrics["seeds"][0]}).

![iterations]({figures[0].name})

Each example has two rows. Top: masked input, x_1 … x_{HEADLINE_T} (unknown pixels grey), ground
truth. Bottom: u_0 = 1 − m_0, u_1 … u_{HEADLINE_T} (black = known, white = unknown, grey =
committed with that uncertainty).
"""
    path = out_dir / "report.md"
    path.write_text(text)
    return path
