"""``textual-inversion demo``: learn a held-out emoji and a colour style on the zoo's emoji
text-to-image model, judged by the zoo's emoji judge (spec §4 at CPU scale).

- Object: a held-out emoji (never a training caption of ``emoji-t2i``) rendered as 4 views
  (shifted and scaled on white); placeholder ``<concept>`` initialised with the head noun of
  its name (e.g. "face"), the object templates. Reconstruction: the judge's identity retrieval
  (top-1 / top-5 among all emoji) and judge image similarity of "an emoji of a <concept>"
  samples. Editability: "an emoji of a {colour} <concept>" for four colours, scored by the
  fraction whose foreground colour is nearest the asked one.
- Comparisons, as in the paper: the initial word (the zero-step embedding) and a per-concept
  fine-tuned model (every UNet weight fine-tuned on the 4 views under "an emoji of a {word}").
- Style: 4 training emoji recoloured (red and blue channels swapped); ``<style>`` learned with
  the style templates, initialised with "emoji"; scored by the fraction of "an emoji of a
  {name} in the style of <style>" samples that are bluer than red, against the initial word.

``quick=True`` runs the same code on the random tiny stack with synthetic images and a random
feature network standing in for the judge (a seconds-long smoke run; numbers meaningless).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from diffrepro.core.config import save_config
from diffrepro.core.data import make_grid, to_pil
from diffrepro.core.edit_demo import report_tail
from diffrepro.core.finetune import ImageLatents, finetune_unet
from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.report import DemoResult, Headline, markdown_table, write_metrics
from diffrepro.core.train import TrainConfig

from .config import PRESETS, TIConfig
from .evaluation import (
    COLOURS,
    colour_hits,
    foreground_colour,
    identity_retrieval,
    image_similarity,
)
from .placeholders import add_placeholder, initializer_id
from .sampling import sample_images
from .training import train_embedding

CAPTION = "an emoji of a {}"


@dataclass(frozen=True)
class DemoSettings:
    ti: TIConfig
    finetune_steps: int
    finetune_lr: float
    num_samples: int
    views: int = 4


FULL = DemoSettings(ti=PRESETS["demo"], finetune_steps=150, finetune_lr=1e-4, num_samples=8)
QUICK = DemoSettings(
    ti=dataclasses.replace(PRESETS["tiny"], steps=4),
    finetune_steps=2,
    finetune_lr=1e-4,
    num_samples=2,
)


@dataclass
class Setup:
    """Base model, judge (``embed``, ``identity_logits``), concept views and names."""

    sd: StableDiffusion
    embed: object
    identity_logits: object
    views: torch.Tensor
    target: int
    name: str
    init: str
    style_views: torch.Tensor
    style_names: list[str]
    style_init: str
    source: str


def demo(
    out_dir: Path,
    *,
    device: str = "cpu",
    seed: int = 0,
    quick: bool = False,
    build_zoo: bool | None = None,
) -> DemoResult:
    """Run the demo; the zoo models are built when missing unless ``build_zoo`` is false (default:
    the environment variable ``DIFFREPRO_ZOO_BUILD`` = 0 turns building off)."""
    from diffrepro.core.repro import resolve_device, seed_everything

    settings = QUICK if quick else FULL
    if build_zoo is None:
        build_zoo = os.environ.get("DIFFREPRO_ZOO_BUILD", "1") != "0"
    seed_everything(seed)
    setup = _quick_setup(settings) if quick else _zoo_setup(settings, seed, build_zoo)
    setup.sd.to(resolve_device(device))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(settings, out_dir / "config.json")
    start = time.perf_counter()
    metrics, rows = _object_experiment(setup, settings, out_dir, seed)
    style_metrics, style_rows = _style_experiment(setup, settings, out_dir, seed)
    metrics.update(style_metrics)
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    metrics["base_model"] = setup.source
    figure = _figure(rows + style_rows, out_dir / "figure.png")
    write_metrics(out_dir, metrics)
    headline = _headline(metrics)
    report = _report(out_dir, setup, settings, metrics, headline, figure, seed, quick)
    return DemoResult(report, headline, metrics)


# -- experiments --------------------------------------------------------------------------------


def _sample(sd, prompt, placeholders, settings, seed):
    return sample_images(
        sd,
        prompt,
        placeholders,
        num_samples=settings.num_samples,
        num_steps=settings.ti.sample_steps,
        guidance_scale=settings.ti.guidance_scale,
        seed=seed,
    )


def _scores(setup: Setup, samples: torch.Tensor) -> dict[str, float]:
    out = identity_retrieval(setup.identity_logits, samples, setup.target)
    out["image_similarity"] = image_similarity(setup.embed, setup.views, samples)
    return out


def _editability(sd, subject: str, placeholders, settings, seed) -> tuple[float, list]:
    hits, shown = [], []
    for colour in COLOURS:
        images = _sample(sd, CAPTION.format(f"{colour} {subject}"), placeholders, settings, seed)
        hits.append(colour_hits(images, colour))
        shown.append((f"{colour} {subject}", images))
    return sum(hits) / len(hits), shown


def _object_experiment(setup: Setup, settings: DemoSettings, out_dir: Path, seed: int):
    sd = setup.sd
    baseline_unet = copy.deepcopy(sd.unet)
    placeholder = add_placeholder(sd.tokenizer, sd.text_encoder, "<concept>", init=setup.init)
    result = train_embedding(
        sd, setup.views, placeholder, settings.ti, out_dir / "object", seed=seed
    )
    metrics: dict = {"object": {"emoji": setup.name, "init_word": setup.init, "lr": result.lr}}
    metrics["object"]["loss_first"], metrics["object"]["loss_last"] = (
        result.losses[0],
        result.losses[-1],
    )
    rows = [("training views", setup.views)]
    methods = {
        "textual_inversion": (sd, "<concept>", [placeholder]),
        "initial_word": (sd, setup.init, []),
    }
    finetuned = _finetuned_model(setup, settings, baseline_unet, out_dir / "finetuned", seed)
    methods["finetuned_unet"] = (finetuned, setup.init, [])
    for method, (model, subject, ph) in methods.items():
        samples = _sample(model, CAPTION.format(subject), ph, settings, seed)
        scores = _scores(setup, samples)
        scores["editability"], edits = _editability(model, subject, ph, settings, seed)
        metrics["object"][method] = scores
        rows.append((f"{method}: {CAPTION.format(subject)}", samples))
        if method == "textual_inversion":
            rows += [(f"TI: {label}", images) for label, images in edits[:2]]
    return metrics, rows


def _finetuned_model(setup: Setup, settings: DemoSettings, unet, out_dir: Path, seed: int):
    sd = setup.sd
    tuned = StableDiffusion(unet, sd.vae, sd.text_encoder, sd.tokenizer, sd.scheduler)
    latents = ImageLatents.encode(tuned, setup.views)
    with torch.no_grad():
        context = tuned.encode_prompt(CAPTION.format(setup.init))
    config = TrainConfig(
        steps=settings.finetune_steps,
        batch_size=settings.ti.batch_size,
        lr=settings.finetune_lr,
        ema_decay=None,
        checkpoint_every=settings.finetune_steps,
        keep_checkpoints=1,
        seed=seed,
    )
    finetune_unet(tuned, latents, context, config, out_dir, resume=False)
    tuned.unet.eval()
    return tuned


def _style_experiment(setup: Setup, settings: DemoSettings, out_dir: Path, seed: int):
    sd = setup.sd
    style_cfg = dataclasses.replace(settings.ti, learnable_property="style")
    word = setup.style_init
    placeholder = add_placeholder(sd.tokenizer, sd.text_encoder, "<style>", init=word)
    train_embedding(sd, setup.style_views, placeholder, style_cfg, out_dir / "style", seed=seed)
    scores, rows = {}, [("style views", setup.style_views)]
    for method, subject, ph in (
        ("textual_inversion", "<style>", [placeholder]),
        ("initial_word", word, []),
    ):
        blue = []
        for name in setup.style_names:
            prompt = CAPTION.format(f"{name} in the style of {subject}")
            images = _sample(sd, prompt, ph, settings, seed)
            colour = foreground_colour(images)
            blue.append(float((colour[:, 2] > colour[:, 0]).float().mean()))
            if name == setup.style_names[0]:
                rows.append((f"{method}: {prompt}", images))
        scores[method] = {"bluer_than_red": sum(blue) / len(blue)}
    return {"style": scores}, rows


# -- setups -------------------------------------------------------------------------------------


def _views(image: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` views of one image: scaled (0.8-1.0) and shifted on a white background."""
    views = []
    for k in range(n):
        scale = 1.0 - 0.2 * k / max(1, n - 1)
        dx, dy = (0.08 * ((k % 2) * 2 - 1), 0.06 * (((k // 2) % 2) * 2 - 1)) if k else (0.0, 0.0)
        theta = torch.tensor([[1 / scale, 0, dx], [0, 1 / scale, dy]], dtype=torch.float32)
        grid = F.affine_grid(theta[None], (1, *image.shape), align_corners=False)
        shifted = F.grid_sample(image[None] - 1.0, grid, align_corners=False, padding_mode="zeros")
        views.append(shifted[0] + 1.0)
    return torch.stack(views).clamp(-1, 1)


def _recolour(images: torch.Tensor) -> torch.Tensor:
    return images[:, [2, 1, 0]]


def _zoo_setup(settings: DemoSettings, seed: int, build: bool) -> Setup:
    try:
        from diffrepro.core import emoji, zoo
    except ImportError:
        raise ValueError(
            "the demo needs the core zoo (emoji-t2i and emoji-judge), which this diffrepro-core "
            "does not have; run the quick smoke demo with --quick"
        ) from None
    sd = zoo.load("emoji-t2i", build=build)
    judge = zoo.load("emoji-judge", build=build).eval()
    size = sd.unet.config.sample_size * sd.vae.downscale_factor
    pictures, _ = emoji.images(size, "all")
    target = _pick_heldout(emoji.select("heldout"), sd, seed)
    word = target.name.split()[-1]
    style_items = [e for e in emoji.select("train") if e.coarse == "face"][:4]
    return Setup(
        sd=sd,
        embed=judge.embed,
        identity_logits=judge.identity_logits,
        views=_views(pictures[target.index], settings.views),
        target=target.index,
        name=target.name,
        init=word,
        style_views=_recolour(pictures[[e.index for e in style_items]]),
        style_names=[e.name for e in style_items[:2]],
        style_init="emoji",
        source="zoo emoji-t2i + emoji-judge",
    )


def _pick_heldout(items, sd: StableDiffusion, seed: int):
    """A held-out emoji with a multi-word name whose head noun is one token of the model."""
    candidates = []
    for item in items:
        words = item.name.split()
        if len(words) < 2:
            continue
        try:
            initializer_id(sd.tokenizer, words[-1])
        except ValueError:
            continue
        candidates.append(item)
    if not candidates:
        raise ValueError("no held-out emoji has a head noun the model's tokenizer knows")
    return candidates[seed % len(candidates)]


def _quick_setup(settings: DemoSettings) -> Setup:
    from diffrepro.core.metrics import TinyFeatureExtractor
    from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

    sd = tiny_stable_diffusion()
    square = torch.ones(3, 32, 32)
    square[:, 8:24, 8:24] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    features = TinyFeatureExtractor(dim=16)
    bank = torch.cat([square[None], torch.rand(7, 3, 32, 32) * 2 - 1])
    prototypes = F.normalize(features(bank), dim=-1)
    return Setup(
        sd=sd,
        embed=features,
        identity_logits=lambda x: F.normalize(features(x), dim=-1) @ prototypes.T,
        views=_views(square, settings.views),
        target=0,
        name="red square",
        init="cat",
        style_views=_recolour(_views(square, settings.views)),
        style_names=["dog"],
        style_init="painting",
        source="sd-tiny (random) + random feature net (quick smoke run)",
    )


# -- outputs ------------------------------------------------------------------------------------


def _figure(rows: list[tuple[str, torch.Tensor]], path: Path) -> Path:
    from PIL import Image, ImageDraw

    width = max(len(images) for _, images in rows)
    cell, label_w = 64, 400
    canvas = Image.new("RGB", (label_w + width * (cell + 2), len(rows) * (cell + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(rows):
        up = F.interpolate(images.float(), size=(cell, cell), mode="nearest")
        strip = to_pil(make_grid(up, nrow=len(up), padding=2))
        canvas.paste(strip, (label_w, r * (cell + 4)))
        draw.text((4, r * (cell + 4) + cell // 2 - 6), label[:64], fill="black")
    canvas.save(path)
    return path


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _headline(m: dict) -> tuple[Headline, ...]:
    o, s = m["object"], m["style"]
    ti, word, ft = o["textual_inversion"], o["initial_word"], o["finetuned_unet"]
    return (
        Headline(
            "identity top-5 of '<S*>' samples (judge)",
            "TI reconstructs better than the initial word (CLIP image sim., figure)",
            f"TI {_fmt(ti['top5'])} / word {_fmt(word['top5'])} / fine-tuned {_fmt(ft['top5'])}",
            f"held-out emoji '{o['emoji']}', init word '{o['init_word']}'",
        ),
        Headline(
            "judge image similarity to the views",
            "DreamBench CLIP-I: TI 0.780, DreamBooth 0.803 (DreamBooth paper, SD)",
            f"TI {_fmt(ti['image_similarity'])} / word {_fmt(word['image_similarity'])} / "
            f"fine-tuned {_fmt(ft['image_similarity'])}",
            "judge embedding, not CLIP",
        ),
        Headline(
            "editability: colour asked for is reached",
            "DreamBench CLIP-T: TI 0.255, DreamBooth 0.305",
            f"TI {_fmt(ti['editability'])} / word {_fmt(word['editability'])} / "
            f"fine-tuned {_fmt(ft['editability'])}",
            "4 colours, nearest-colour rule (chance 0.25)",
        ),
        Headline(
            "style: samples bluer than red",
            "style transfer shown qualitatively",
            f"TI {_fmt(s['textual_inversion']['bluer_than_red'])} / word "
            f"{_fmt(s['initial_word']['bluer_than_red'])}",
            "style = red/blue channels swapped",
        ),
    )


def _report(out_dir, setup, settings, metrics, headline, figure, seed, quick) -> Path:
    scale = (
        "QUICK smoke run on a random tiny model: the numbers are meaningless."
        if quick
        else "CPU scale: a 32 px emoji text-to-image model from the core zoo (millions of "
        "parameters, trained for minutes) instead of LDM 1.4B / SD at 256-512 px; "
        f"{settings.ti.steps} TI steps instead of 5000; {settings.num_samples} samples per "
        "prompt instead of 64; the zoo's emoji judge instead of CLIP ViT-B/32."
    )
    lines = [
        "# Textual Inversion: CPU-scale reproduction",
        "",
        f"Base model: {setup.source}. Seed {seed}. Wall time {metrics['seconds']} s.",
        "",
        "What ran: a placeholder learned from "
        f"{len(setup.views)} views of the held-out emoji '{setup.name}' (init word "
        f"'{setup.init}'), compared with the initial word and a per-concept fine-tuned UNet "
        f"({settings.finetune_steps} steps, lr {settings.finetune_lr}); a style placeholder "
        f"learned from {len(setup.style_views)} recoloured emoji.",
        "",
        f"![figure]({figure.name})",
        "",
        "## Paper vs ours",
        "",
        markdown_table(headline),
        "",
        "The paper reports its trade-off as a scatter plot (no table); the DreamBench numbers "
        "are third-party context (DreamBooth paper), not targets.",
        "",
        *report_tail(scale, metrics),
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
