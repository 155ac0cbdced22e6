"""``masksketch demo``: the CPU-scale reproduction on the zoo's emoji MaskGIT.

Sketches are Canny edge maps of held-out emoji (never seen by the MaskGIT). Measured:

1. the premise: per-layer AUROC of the structure distance for matched vs unmatched
   image-sketch pairs;
2. the λs sweep {0, 0.3, 0.6, 0.9, 1}: structure distance to the sketch and silhouette IoU
   with the emoji the sketch came from (fidelity), class consistency under the core judge and
   emoji-FD (realism), drawn as the trade-off figure; λs = 0 and 0.9 over three seeds;
3. the baselines: plain MaskGIT and the SDEdit-like sketch-token start without structure term;
4. best-of-K rejection by structure / classifier scores against a random pick.

The quick path uses untrained tiny models and synthetic sketches (seconds, nothing trained).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from pathlib import Path

import torch

from diffrepro.core.config import save_config
from diffrepro.core.data import save_grid
from diffrepro.core.report import DemoResult, Headline, markdown_table, write_metrics
from diffrepro.core.repro import single_threaded_on_cpu
from diffrepro.maskgit.decoding import DecodeConfig
from diffrepro.masksketch import rejection
from diffrepro.masksketch.config import DEMO, TINY, MaskSketchConfig
from diffrepro.masksketch.figure import scatter_plot, stack_images
from diffrepro.masksketch.generation import (
    SketchGenerated,
    generate,
    plain_maskgit,
    sdedit_like,
    sketch_distance,
    sketch_sequence,
)
from diffrepro.masksketch.premise import layer_auroc, pair_distances
from diffrepro.masksketch.sketches import edge_sketch, emoji_sketches

LAMBDAS = (0.0, 0.3, 0.6, 0.9, 1.0)
FOREGROUND = 0.85  # a pixel whose darkest channel is below this is not background (white)


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    # sized to run in minutes on one CPU core (4 / 24 / 32 / 3 did not finish in 20 on a loaded one)
    per_class: int = 1
    candidates: int = 2
    num_iter: int = 12
    premise_pairs: int = 16
    seeds: int = 2
    baseline_steps: int = 8


def demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = (
        DemoSettings(candidates=2, num_iter=3, premise_pairs=6, seeds=2, baseline_steps=2)
        if quick
        else DemoSettings()
    )
    start = time.perf_counter()
    with single_threaded_on_cpu(device):
        model, tok, source = _models(device, quick, seed)
        cfg = dataclasses.replace(
            TINY if quick else DEMO, candidates=settings.candidates, num_iter=settings.num_iter
        )
        metrics = _run(model.eval().cpu(), tok.eval().cpu(), cfg, settings, out_dir, seed, quick)
    metrics.update(models=source, seed=seed, seconds=round(time.perf_counter() - start, 1))
    write_metrics(out_dir, metrics)
    save_config(settings, out_dir / "demo_config.json")
    save_config(cfg, out_dir / "masksketch_config.json")
    headline = _headline(metrics)
    return DemoResult(_report(out_dir, metrics, headline), headline, metrics)


def _models(device: str, quick: bool, seed: int):
    if quick:
        from diffrepro.maskgit.config import TINY as MASKGIT_TINY
        from diffrepro.maskgit.transformer import MaskGitTransformer
        from diffrepro.maskgit.vqgan import VQGAN

        torch.manual_seed(seed)
        model, tok = MaskGitTransformer(MASKGIT_TINY.transformer), VQGAN(MASKGIT_TINY.tokenizer)
        return model, tok, "quick smoke models (maskgit tiny preset, untrained)"
    from diffrepro.core import zoo
    from diffrepro.maskgit.emoji_models import TOKENIZER, TRANSFORMER

    model = zoo.load(TRANSFORMER, device=device, build=False)
    tok = zoo.load(TOKENIZER, device=device, build=False)
    return model, tok, f"zoo entries {TRANSFORMER} + {TOKENIZER}"


def _shapes(n: int, size: int, seed: int):
    """Quick-path data: dark rectangles on white, their edge sketches and masks."""
    gen = torch.Generator().manual_seed(seed)
    big = torch.ones(n, 3, size * 4, size * 4)
    for i in range(n):
        a, b = torch.randint(2, size * 2, (2,), generator=gen).tolist()
        big[i, :, a : a + size * 2, b : b + size] = 0.2
    images = torch.nn.functional.avg_pool2d(big, 4)
    alpha = (images.amin(1, keepdim=True) < FOREGROUND).float()
    labels = torch.arange(n) % 3
    return edge_sketch(big, size), images, alpha, labels


def _data(size: int, settings: DemoSettings, quick: bool, seed: int):
    """(sketches, source images, alpha, labels) for generation and for the premise check."""
    if quick:
        return _shapes(3, size, seed), _shapes(settings.premise_pairs, size, seed + 1)
    sketches, images, alpha, labels = emoji_sketches(size)
    pick = [
        int(i)
        for c in range(int(labels.max()) + 1)
        for i in (labels == c).nonzero().flatten()[: settings.per_class]
    ]
    step = max(1, len(labels) // settings.premise_pairs)
    spread = torch.arange(0, len(labels), step)[: settings.premise_pairs]
    sel = lambda idx: (sketches[idx], images[idx], alpha[idx], labels[idx])  # noqa: E731
    return sel(torch.tensor(pick)), sel(spread)


def _judge(quick: bool):
    """(classify fn or None, features fn, name), on images in [0, 1]."""
    if not quick:
        from diffrepro.core import zoo
        from diffrepro.core.zoo.judge import batched_features

        judge = zoo.load("emoji-judge", build=False).eval()
        return (
            lambda x: judge.class_logits(x * 2 - 1),
            lambda x: batched_features(judge, x * 2 - 1),
            "core emoji-judge",
        )
    from diffrepro.core.metrics import TinyFeatureExtractor

    net = TinyFeatureExtractor()
    return None, lambda x: net(x * 2 - 1), "random-feature proxy (quick run)"


def silhouette_iou(images: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """IoU (B,) of the non-white pixels of ``images`` with the source emoji's alpha > 0.5."""
    fg = images.amin(dim=1) < FOREGROUND
    ref = alpha[:, 0] > 0.5
    union = (fg | ref).sum((1, 2)).clamp_min(1)
    return (fg & ref).sum((1, 2)) / union


def _fd(features, a: torch.Tensor, b: torch.Tensor) -> float:
    from diffrepro.core.metrics import frechet_distance, gaussian_fit

    value = frechet_distance(*gaussian_fit(features(a)), *gaussian_fit(features(b)))
    if not math.isfinite(value):
        raise FloatingPointError("the Fréchet distance is not finite")
    return value


def _score(model, gen: SketchGenerated, cfg, alpha, judge, real, rows=None) -> dict:
    """Mean metrics over the candidates (or over ``rows``, e.g. the picked ones)."""
    classify, features, _ = judge
    idx = torch.arange(len(gen.images)) if rows is None else rows
    images, labels = gen.images[idx], gen.labels[idx]
    reps = alpha.repeat_interleave(gen.candidates, 0)[idx]
    out = {
        "structure_distance": float(sketch_distance(model, gen, cfg)[idx].mean()),
        "silhouette_iou": float(silhouette_iou(images, reps).mean()),
        "fd": _fd(features, images, real),
    }
    if classify is not None:
        out["class_accuracy"] = float((classify(images).argmax(-1) == labels).double().mean())
    for key, value in out.items():
        if not math.isfinite(value):
            raise FloatingPointError(f"the demo metric {key} is not finite")
    return out


def _premise(model, tok, data, cfg) -> dict:
    sketches, images, _, labels = data
    layers = tuple(range(model.config.depth))
    img_seq = sketch_sequence(model, tok, images, labels)
    sk_seq = sketch_sequence(model, tok, sketches, labels)
    out = {}
    for mode in ("sym_ce", "sym_kl"):
        d = pair_distances(model, img_seq, sk_seq, layers, mode)
        per_layer = layer_auroc(d)
        out[mode] = {
            "per_layer": dict(zip(map(str, layers), per_layer)),
            "mean_of_layers": layer_auroc(d.mean(0, keepdim=True))[0],
        }
    out["pairs"] = len(labels)
    return out


def _run(model, tok, cfg: MaskSketchConfig, settings: DemoSettings, out_dir, seed, quick):
    size = tok.config.downsample * model.config.latent_size
    (sketches, images, alpha, labels), premise_data = _data(size, settings, quick, seed)
    judge = _judge(quick)
    real = images if quick else _train_images(size)
    metrics: dict = {
        "judge": judge[2],
        "sketches": len(labels),
        "model_config": dataclasses.asdict(model.config),
        "num_iter": cfg.num_iter,
    }
    metrics["premise"] = _premise(model, tok, premise_data, cfg)
    score = lambda g, rows=None: _score(model, g, cfg, alpha, judge, real, rows)  # noqa: E731
    sweep, shown = {}, {}
    for lam in LAMBDAS:
        g = generate(
            model,
            tok,
            sketches,
            labels,
            dataclasses.replace(cfg, lambda_structure=lam),
            torch.Generator().manual_seed(seed),
        )
        sweep[str(lam)] = score(g)
        shown[f"λs = {lam}"] = g
    metrics["lambda_sweep"] = sweep
    dec = DecodeConfig(num_iter=settings.baseline_steps, guidance_scale=cfg.guidance_scale)
    base = {
        "plain MaskGIT": plain_maskgit(
            model, tok, sketches, labels, cfg, dec, torch.Generator().manual_seed(seed)
        ),
        "SDEdit-like": sdedit_like(
            model, tok, sketches, labels, cfg, dec, torch.Generator().manual_seed(seed)
        ),
    }
    metrics["baselines"] = {k: score(g) for k, g in base.items()}
    metrics["seeds"] = _seeds(model, tok, sketches, labels, cfg, settings, seed, score, sweep)
    metrics["rejection"] = _rejection(model, shown["λs = 0.9"], cfg, judge, seed, score)
    _figures(out_dir, sketches, images, {**base, **shown}, metrics)
    return metrics


def _train_images(size: int) -> torch.Tensor:
    from diffrepro.core import emoji

    return (emoji.images(size, "train")[0] + 1) / 2


def _seeds(model, tok, sketches, labels, cfg, settings, seed, score, sweep) -> dict:
    """λs = 0 vs 0.9 over ``settings.seeds`` seeds (the first is the sweep's): mean and std."""
    out = {}
    seeds = list(range(seed, seed + settings.seeds))
    for lam in (0.0, 0.9):
        runs = [sweep[str(lam)]] + [
            score(
                generate(
                    model,
                    tok,
                    sketches,
                    labels,
                    dataclasses.replace(cfg, lambda_structure=lam),
                    torch.Generator().manual_seed(s),
                )
            )
            for s in seeds[1:]
        ]
        out[str(lam)] = {
            key: {
                "mean": statistics.fmean(r[key] for r in runs),
                "std": statistics.pstdev(r[key] for r in runs),
            }
            for key in runs[0]
        }
    out["seeds"] = seeds
    return out


def _rejection(model, gen: SketchGenerated, cfg, judge, seed, score) -> dict:
    scorers = {
        "random": rejection.random_scorer(torch.Generator().manual_seed(seed)),
        "structure": rejection.structure_scorer(model, cfg),
    }
    if judge[0] is not None:
        scorers["classifier"] = rejection.classifier_scorer(judge[0])
    out = {}
    for name, scorer in scorers.items():
        _, index = rejection.select(gen, scorer)
        out[name] = score(gen, index)
    out["candidates"] = gen.candidates
    return out


def _figures(out_dir: Path, sketches, images, runs: dict, metrics: dict) -> None:
    rows = [images, sketches] + [g.images[:: g.candidates] for g in runs.values()]
    save_grid(torch.cat(rows) * 2 - 1, out_dir / "samples.png", nrow=len(sketches))
    sweep, base = metrics["lambda_sweep"], metrics["baselines"]
    has_acc = "class_accuracy" in sweep["0.0"]
    y_key = "class_accuracy" if has_acc else "fd"
    points = {f"lambda_s={k}": (v["silhouette_iou"], v[y_key]) for k, v in sweep.items()}
    points.update({k: (v["silhouette_iou"], v[y_key]) for k, v in base.items()})
    scatter_plot(
        points,
        out_dir / "tradeoff.png",
        xlabel="silhouette IoU with the source emoji (fidelity)",
        ylabel="class consistency (judge)" if has_acc else "FD (proxy)",
        title="MaskSketch realism-fidelity trade-off",
        connect=[f"lambda_s={k}" for k in sweep],
    )
    points_fd = {f"lambda_s={k}": (v["structure_distance"], v["fd"]) for k, v in sweep.items()}
    points_fd.update({k: (v["structure_distance"], v["fd"]) for k, v in base.items()})
    scatter_plot(
        points_fd,
        out_dir / "tradeoff_fd.png",
        xlabel="structure distance to the sketch (lower = closer)",
        ylabel="emoji-FD (lower = more realistic)",
        title="structure distance vs emoji-FD",
        connect=[f"lambda_s={k}" for k in sweep],
    )
    stack_images(
        [out_dir / n for n in ("samples.png", "tradeoff.png", "tradeoff_fd.png")],
        out_dir / "figure.png",
    )


def _fmt(row: dict, key: str, pct: bool = False) -> str:
    if key not in row:
        return "n/a"
    return f"{row[key]:.0%}" if pct else f"{row[key]:.3f}"


def _headline(m: dict) -> tuple[Headline, ...]:
    sw, base, rej, seeds = m["lambda_sweep"], m["baselines"], m["rejection"], m["seeds"]
    prem = m["premise"]["sym_ce"]
    best_layer = max(prem["per_layer"], key=prem["per_layer"].get)
    s0, s9 = seeds["0.0"], seeds["0.9"]
    return (
        Headline(
            "realism / fidelity on sketch benchmarks",
            "beats sketch-to-image and unpaired I2I baselines (abstract)",
            "not measured",
            "paper's datasets and numbers unverified; CPU proxy below",
        ),
        Headline(
            "premise: AUROC own vs other sketch (mean of layers)",
            "attention is domain-invariant (qualitative)",
            f"{prem['mean_of_layers']:.2f} (best layer {best_layer}: "
            f"{prem['per_layer'][best_layer]:.2f})",
            f"{m['premise']['pairs']} held-out emoji, sym_ce",
        ),
        Headline(
            "silhouette IoU λs = 0.9 vs 0 (fidelity)",
            "structure follows the sketch as λs grows",
            f"{s9['silhouette_iou']['mean']:.3f} ± {s9['silhouette_iou']['std']:.3f} vs "
            f"{s0['silhouette_iou']['mean']:.3f} ± {s0['silhouette_iou']['std']:.3f}",
            f"seeds {seeds['seeds']}",
        ),
        Headline(
            "structure distance λs = 0.9 vs 0",
            "lower with the structure term",
            f"{s9['structure_distance']['mean']:.3f} vs {s0['structure_distance']['mean']:.3f}",
            "sym_ce, image positions",
        ),
        Headline(
            "class consistency λs = 0 / 0.9 / 1",
            "realism drops as λs → 1",
            " / ".join(_fmt(sw[k], "class_accuracy", True) for k in ("0.0", "0.9", "1.0")),
            m["judge"],
        ),
        Headline(
            "silhouette IoU: plain / SDEdit-like / λs = 0.9",
            "structure term drives fidelity",
            " / ".join(
                _fmt(r, "silhouette_iou")
                for r in (base["plain MaskGIT"], base["SDEdit-like"], sw["0.9"])
            ),
            "same sketches and seed",
        ),
        Headline(
            "best-of-K by structure vs random: distance",
            "rejection improves fidelity (CLIP, unreleased)",
            f"{rej['structure']['structure_distance']:.3f} vs "
            f"{rej['random']['structure_distance']:.3f}",
            f"K = {rej['candidates']}, λs = 0.9",
        ),
    )


def _report(out_dir: Path, m: dict, headline) -> Path:
    keys = ("structure_distance", "silhouette_iou", "class_accuracy", "fd")
    head = "| setting | structure distance ↓ | silhouette IoU ↑ | class consistency ↑ | FD ↓ |"
    table = lambda rows: [head, "|---|---|---|---|---|"] + [  # noqa: E731
        f"| {name} | " + " | ".join(_fmt(r, k, k == "class_accuracy") for k in keys) + " |"
        for name, r in rows.items()
    ]
    prem = m["premise"]
    lines = [
        "# MaskSketch — CPU-scale reproduction",
        "",
        f"Models: {m['models']}. Judge: {m['judge']}. Seed {m['seed']}; {m['seconds']} s.",
        f"{m['sketches']} sketches (Canny edge maps of held-out emoji), "
        f"{m['rejection']['candidates']} candidates each.",
        "",
        "## Paper vs ours",
        "",
        markdown_table(headline),
        "",
        "## Premise: AUROC of the structure distance, own sketch vs another's",
        "",
        "| mode | " + " | ".join(f"layer {k}" for k in prem["sym_ce"]["per_layer"]) + " | mean |",
        "|---|" + "---|" * (len(prem["sym_ce"]["per_layer"]) + 1),
    ]
    for mode in ("sym_ce", "sym_kl"):
        vals = " | ".join(f"{v:.3f}" for v in prem[mode]["per_layer"].values())
        lines.append(f"| {mode} | {vals} | {prem[mode]['mean_of_layers']:.3f} |")
    lines += ["", "## λs sweep and baselines (mean over all candidates)", ""]
    rows = {f"λs = {k}": v for k, v in m["lambda_sweep"].items()}
    lines += table({**rows, **m["baselines"]})
    lines += ["", "## λs = 0 vs 0.9 over seeds (mean ± std)", ""]
    for lam in ("0.0", "0.9"):
        row = m["seeds"][lam]
        lines.append(
            f"- λs = {lam}: "
            + ", ".join(f"{k} {v['mean']:.3f} ± {v['std']:.3f}" for k, v in row.items())
        )
    lines += ["", "## Best-of-K rejection at λs = 0.9 (the picked candidates)", ""]
    lines += table({k: v for k, v in m["rejection"].items() if isinstance(v, dict)})
    lines += [
        "",
        "The classifier scorer uses the same judge as the class-consistency column, so its "
        "row is optimistic by construction.",
        "",
        "## Figures",
        "",
        "![figure](figure.png)",
        "",
        "Rows of samples.png: source emoji, sketch, plain MaskGIT, SDEdit-like, then "
        "λs = 0, 0.3, 0.6, 0.9, 1 (candidate 0 of each sketch). Below: the trade-off plots.",
        "",
        "## Honest scale",
        "",
        "32 px emoji, an 8×8 token grid with 128 codes and a 3-layer, 4-head, 96-wide "
        "MaskGIT trained for minutes on a CPU (zoo), against the paper's 256 px ImageNet "
        "MaskGIT (16×16 tokens, 1024 codes, 24 layers, 16 heads) and 500 iterations. We use "
        f"T = {m['num_iter']} iterations, all 3 layers, and "
        "silhouette IoU / judge class consistency / emoji-FD as CPU proxies; none of these "
        "numbers is comparable with the paper's FID or its sketch benchmarks.",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
