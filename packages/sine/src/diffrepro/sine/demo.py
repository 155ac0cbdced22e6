"""``sine demo``: SINE on the zoo's emoji text-to-image model, judged by the zoo's emoji judge
(spec §4 at CPU scale).

Source: the "dog face" emoji; class word "dog", identifier caption "an emoji of a sks dog";
edit prompt "an emoji of a cat face". One single-image fine-tune (UNet + text encoder); then:

- the v sweep (weight on the fine-tuned model, K = 500) and the K sweep (v = 0.6), each point
  over several seeds: fidelity = judge-embedding cosine to the source, alignment = the judge's
  probability of the target emoji "cat face";
- plain single-image fine-tuning (the fine-tuned model alone under the edit prompt, the
  over-fitting SINE fixes) and the pretrained model alone (v = 0: plain CFG);
- patch-based fine-tuning on a 2x render (64 px, positional grid 16 latent pixels, crops resized
  to 32 px) and an edit at 64x48 px, beside the plain fine-tune at the same size.

``quick=True`` runs the same code on the random tiny stack with a random feature network as the
judge (a seconds-long smoke run; its numbers mean nothing).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from diffrepro.core import edit_demo as frame
from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.report import DemoResult, Headline, markdown_table, write_metrics
from diffrepro.core.seeded_sampling import decode_clamped

from .config import PRESETS, SineConfig
from .editing import FineTuned, edit, make_guide
from .finetune import finetune
from .guidance import Window, active_steps

SOURCE, TARGET, CLASS_WORD = "dog face", "cat face", "dog"
EDIT = "an emoji of a {}"


@dataclass(frozen=True)
class DemoSettings:
    sine: SineConfig
    vs: tuple[float, ...]
    ks: tuple[int, ...]
    seeds: int
    other_size: tuple[int, int]


FULL = DemoSettings(
    dataclasses.replace(PRESETS["demo"], num_steps=25),
    (0.0, 0.3, 0.6, 0.8, 1.0), (0, 250, 500, 750, 1000), 3, (64, 48),
)  # fmt: skip
QUICK = DemoSettings(PRESETS["tiny"], (0.0, 0.6, 1.0), (0, 500, 1000), 2, (48, 32))


def demo(
    out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False, build_zoo=None
) -> DemoResult:
    settings = QUICK if quick else FULL
    setup, metrics, rows = frame.run_edit_demo(
        out_dir, settings, _experiment, setup_fn=_setup, device=device, seed=seed, quick=quick,
        build_zoo=build_zoo,
    )  # fmt: skip
    out_dir = Path(out_dir)
    figure = frame.rows_figure(rows, out_dir / "figure.png", label_width=230, label_chars=36)
    write_metrics(out_dir, metrics)
    headline = _headline(metrics)
    report = _report(out_dir, setup, settings, metrics, headline, figure, seed, quick)
    return DemoResult(report, headline, metrics)


def _setup(quick: bool, build_zoo: bool) -> frame.EditDemoSetup:
    if quick:
        return frame.quick_setup(high=True)
    return frame.zoo_setup(SOURCE, TARGET, build_zoo, high=True)


def _tuned(setup: frame.EditDemoSetup, cfg: SineConfig, image, out: Path, seed: int) -> FineTuned:
    sd = setup.sd
    copy_sd = StableDiffusion(
        copy.deepcopy(sd.unet), sd.vae, copy.deepcopy(sd.text_encoder), sd.tokenizer, sd.scheduler
    )
    finetune(copy_sd, image, CLASS_WORD, cfg, out, seed=seed)
    return FineTuned(copy_sd, cfg.caption.format(CLASS_WORD))


def _experiment(setup: frame.EditDemoSetup, settings: DemoSettings, out_dir: Path, seed: int):
    cfg, sd = settings.sine, setup.sd
    prompt = EDIT.format(TARGET)
    seeds = [seed + k for k in range(settings.seeds)]
    tuned = _tuned(setup, cfg, setup.source, out_dir / "finetune", seed)
    size = (cfg.resolution, cfg.resolution)

    def run(model, guides, hw=size):
        z = edit(
            model, prompt, guides, seeds=seeds, height=hw[0], width=hw[1],
            guidance_scale=cfg.guidance_scale, num_steps=cfg.num_steps, ddim_eta=cfg.ddim_eta,
        )  # fmt: skip
        return decode_clamped(model, z)

    def guided(v, k, model=tuned, hw=size):
        return run(sd, [make_guide(model, v, Window(k, cfg.k_max, cfg.window_rule))], hw)

    grid = sd.scheduler.grid(cfg.num_steps)
    metrics: dict = {"source": SOURCE, "edit_prompt": prompt, "caption": tuned.caption}
    metrics["seeds"] = seeds
    rows = [("source", setup.source[None])]
    metrics["v_sweep"] = []
    for v in settings.vs:
        images = guided(v, cfg.k_min)
        metrics["v_sweep"].append({"v": v, "k": cfg.k_min, **_scores(setup, images)})
        rows.append((f"v={v:g} K={cfg.k_min}", images))
    metrics["k_sweep"] = []
    for k in settings.ks:
        images = guided(cfg.v, k)
        steps = active_steps(grid, Window(k, cfg.k_max, cfg.window_rule))
        metrics["k_sweep"].append(
            {"k": k, "v": cfg.v, "guided_steps": steps, **_scores(setup, images)}
        )
        rows.append((f"v={cfg.v:g} K={k} ({steps} steps)", images))
    plain = run(tuned.sd, [])
    metrics["finetuned_alone_edit_prompt"] = _scores(setup, plain)
    rows.append(("fine-tuned alone, edit prompt", plain))
    recon = edit(
        tuned.sd, tuned.caption, [], seeds=seeds, height=size[0], width=size[1],
        guidance_scale=cfg.guidance_scale, num_steps=cfg.num_steps,
    )  # fmt: skip
    recon = decode_clamped(sd, recon)
    metrics["finetuned_alone_caption"] = _scores(setup, recon)
    rows.append(("fine-tuned alone, caption", recon))
    metrics["pretrained_alone"] = next(p for p in metrics["v_sweep"] if p["v"] == 0.0)
    patch_cfg = dataclasses.replace(cfg, patch=True)
    patched = _tuned(setup, patch_cfg, setup.source_high, out_dir / "finetune_patch", seed)
    hw = settings.other_size
    metrics["other_size"] = list(hw)
    for name, model in (("patch", patched), ("no_patch", tuned)):
        images = guided(cfg.v, cfg.k_min, model, hw)
        metrics[f"{name}_at_other_size"] = _scores(setup, images)
        rows.append((f"{name} fine-tune, {hw[0]}x{hw[1]}", images))
    return metrics, rows


def _scores(setup: frame.EditDemoSetup, images) -> dict[str, float]:
    return frame.judge_scores(setup, images)


def _fmt(p: dict) -> str:
    return f"{p['fidelity_cos']:.3f} / {p['target_prob']:.4f}"


def _headline(m: dict) -> tuple[Headline, ...]:
    v = {p["v"]: p for p in m["v_sweep"]}
    k = {p["k"]: p for p in m["k_sweep"]}
    vmax = max(v)
    return (
        Headline(
            "v sweep (fidelity / P(target)), v = 0 -> 1",
            "larger v: closer to the source, weaker edit (LPIPS-CLIP curve)",
            f"{_fmt(v[0.0])} -> {_fmt(v[vmax])}",
            f"K = {m['v_sweep'][0]['k']}, seeds {m['seeds']}",
        ),
        Headline(
            "K sweep (fidelity / P(target)), K = 0 -> 1000",
            "smaller K (longer guidance): more fidelity, less edit",
            f"{_fmt(k[min(k)])} -> {_fmt(k[max(k)])}",
            "K above every step = plain CFG",
        ),
        Headline(
            "fine-tuned alone under the edit prompt",
            "over-fits: reproduces the source, ignores the edit",
            _fmt(m["finetuned_alone_edit_prompt"]),
            f"model-based guidance v=0.6: {_fmt(v.get(0.6, v[vmax]))}",
        ),
        Headline(
            f"edit at {m['other_size'][0]}x{m['other_size'][1]}: patch / no patch",
            "patch-based fine-tuning keeps the layout at other resolutions",
            f"{_fmt(m['patch_at_other_size'])} | {_fmt(m['no_patch_at_other_size'])}",
            "judge reads images resized to 32 px",
        ),
    )


def _report(out_dir, setup, settings, metrics, headline, figure, seed, quick) -> Path:
    cfg = settings.sine
    scale = (
        "QUICK smoke run on a random tiny model: the numbers are meaningless."
        if quick
        else "CPU scale: the zoo's 32 px emoji text-to-image model (a few million parameters, "
        "trained for minutes; blurry samples) instead of SD 1.4 at 512 px; fine-tuning "
        f"{cfg.steps} steps (patch: {cfg.patch_steps}) at lr {cfg.lr:g} instead of 800 "
        f"(10000) at 1e-6; DDIM {cfg.num_steps} steps instead of 100, guidance "
        f"{cfg.guidance_scale:g} instead of 10; {settings.seeds} seeds per point instead of 20; "
        "the zoo's emoji judge instead of CLIP and LPIPS."
    )
    table = ["| sweep | v | K | fidelity cos | P(target) | target top-5 |", "|---" * 6 + "|"]
    for name in ("v_sweep", "k_sweep"):
        for p in metrics[name]:
            table.append(
                f"| {name} | {p['v']:g} | {p['k']} | {p['fidelity_cos']:.3f} | "
                f"{p['target_prob']:.4f} | {p['target_top5']:.2f} |"
            )
    lines = [
        "# SINE: CPU-scale reproduction",
        "",
        f"Base model: {setup.label}. Seed {seed}. Wall time {metrics['seconds']} s.",
        "",
        f"What ran: '{SOURCE}' fine-tuned under \"{metrics['caption']}\", edited with "
        f'"{metrics["edit_prompt"]}" by model-based guidance; v and K sweeps, the fine-tuned '
        "model alone, and a patch-trained model edited at another size.",
        "",
        f"![samples]({figure.name})",
        "",
        "## Paper vs ours",
        "",
        markdown_table(headline),
        "",
        "The paper shows its ablations as LPIPS-CLIP plots (no table); its claims are qualitative.",
        "",
        "## Sweeps",
        "",
        *table,
        "",
        *frame.report_tail(scale, metrics),
    ]
    return frame.write_report(out_dir, lines)
