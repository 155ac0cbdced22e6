"""Quality of the zoo's models, written into each entry's card (``nox -s bench``).

    python shared/benchmarks/bench_zoo.py [--entries emoji-t2i emoji-judge ...] [--samples 256]

- emoji-vae: reconstruction PSNR (train / held-out) and the measured scaling factor;
- emoji-t2i, emoji-t2i-food: samples for captions of its training emoji (the train split of
  the classes it was trained on) and of the held-out emoji of those classes, read by
  emoji-judge: caption→image top-1 / top-5 retrieval among all 1,457 emoji (chance 1/1457 and
  5/1457), emoji-FD of the samples to the training renders, and a figure of samples;
- emoji-judge: identity accuracy on clean / augmented renders, coarse accuracy on held-out;
- emoji-ddpm(-cond): emoji-FD of samples to the training renders and the memorisation rate
  (share of samples whose nearest training image is within 20 dB PSNR, i.e. a near copy);
  for the class-conditional model, how often the judge assigns a sample its class.

Missing entries are built first (``--no-build`` skips them). Every figure is checked finite
before it is recorded. Results: ``runs/bench/zoo.{json,md}``, ``runs/bench/zoo_*.png`` and each
entry's ``quality.json`` / ``card.md``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from diffrepro.core import emoji, zoo
from diffrepro.core.benchmark import BENCH_DIR, machine, write_results
from diffrepro.core.data import save_grid
from diffrepro.core.metrics import psnr
from diffrepro.core.zoo.judge import emoji_fd, retrieval_accuracy

ENTRIES = (
    "emoji-vae",
    "emoji-judge",
    "emoji-t2i",
    "emoji-t2i-food",
    "emoji-ddpm",
    "emoji-ddpm-cond",
)
N_EMOJI = len(emoji.emoji_set())
COPY_PSNR_DB = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", nargs="*", default=list(ENTRIES))
    parser.add_argument("--samples", type=int, default=256, help="generated images per model")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=4.0, help="t2i guidance scale")
    parser.add_argument("--no-build", action="store_true", help="skip entries not built")
    args = parser.parse_args()
    if args.samples < 2 or args.steps < 1:
        parser.error("--samples must be at least 2 and --steps at least 1")
    rows = []
    for name in args.entries:
        entry = zoo.get(name)
        if args.no_build and zoo.built(entry) is None:
            print(f"{name}: not built, skipped")
            continue
        folder = zoo.path(entry)
        facts = zoo.read_manifest(folder)["facts"]
        start = time.perf_counter()
        with torch.no_grad():
            quality = MEASURES[name](args) if name in MEASURES else {}
        quality["bench_seconds"] = round(time.perf_counter() - start, 1)
        _check_finite(name, quality)
        zoo.record_quality(entry, folder, quality)
        rows.append({"entry": name, "key": entry.key(), **facts, **quality})
        print(name, quality, flush=True)
    notes = f"machine: {machine()}; chance top-1 = 1/{N_EMOJI}, top-5 = 5/{N_EMOJI}"
    print(write_results("zoo", rows, notes=notes))


def _check_finite(name: str, quality: dict) -> None:
    for key, value in quality.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise FloatingPointError(f"{name}: {key} is not finite")


def _vae(args) -> dict:
    vae = zoo.load("emoji-vae")
    out = {}
    for split in ("train", "heldout"):
        x, _ = emoji.images(vae.config.sample_size, split)
        recon = torch.cat([vae(c).clamp(-1, 1) for c in x.split(128)])
        out[f"psnr_{split}_db"] = float(psnr(recon, x).mean())
    out["scaling_factor"] = vae.config.scaling_factor
    return out


def _t2i(name: str):
    return lambda args: _measure_t2i(name, args)


def _measure_t2i(name: str, args) -> dict:
    sd = zoo.load(name)
    judge = zoo.load("emoji-judge")
    size = sd.vae.config.sample_size
    train_x, _ = emoji.images(size, "train")
    out: dict = {"chance_top1": 1 / N_EMOJI, "chance_top5": 5 / N_EMOJI}
    classes = zoo.get(name).recipe.classes
    for split, count in (("train", args.samples), ("heldout", max(2, args.samples // 4))):
        items = [e for e in emoji.select(split) if emoji.COARSE_CLASSES[e.label] in classes]
        pick = torch.randperm(len(items), generator=torch.Generator().manual_seed(0))[:count]
        chosen = [items[int(i)] for i in pick]
        prompts = [e.caption(emoji.TEMPLATES[0]) for e in chosen]
        images = _t2i_samples(sd, prompts, args)
        targets = torch.tensor([e.index for e in chosen])
        acc = retrieval_accuracy(judge, images, targets)
        out[f"{split}_top1"], out[f"{split}_top5"] = acc[1], acc[5]
        out[f"{split}_samples"] = len(chosen)
        if split == "train":
            out["emoji_fd_to_train"] = emoji_fd(images, train_x, judge)
            out["emoji_fd_data_heldout_vs_train"] = emoji_fd(
                emoji.images(size, "heldout")[0], train_x, judge
            )
            _figure(name, sd, chosen[:16], args)
    x, _ = emoji.images(size, "heldout")
    recon = torch.cat([sd.decode_latents(sd.encode_images(c)).clamp(-1, 1) for c in x.split(128)])
    out["autoencoder_psnr_heldout_db"] = float(psnr(recon, x).mean())
    out["ddim_steps"], out["guidance_scale"] = args.steps, args.guidance
    return out


def _t2i_samples(sd, prompts: list[str], args) -> torch.Tensor:
    chunks = []
    for start in range(0, len(prompts), 64):
        batch = prompts[start : start + 64]
        gens = [torch.Generator().manual_seed(start + k) for k in range(len(batch))]
        z = sd.sample(batch, num_steps=args.steps, guidance_scale=args.guidance, generator=gens)
        chunks.append(sd.decode_latents(z).clamp(-1, 1))
    return torch.cat(chunks)


def _figure(name: str, sd, chosen, args) -> None:
    """Row pairs: the rendered emoji above the model's sample for its caption."""
    truth, _ = emoji.images(sd.vae.config.sample_size, "all")
    samples = _t2i_samples(sd, [e.caption(emoji.TEMPLATES[0]) for e in chosen], args)
    rows = []
    for k in range(0, len(chosen), 8):
        rows += [truth[e.index] for e in chosen[k : k + 8]] + list(samples[k : k + 8])
    save_grid(torch.stack(rows), BENCH_DIR / f"zoo_{name}.png", nrow=8)
    captions = "; ".join(e.name for e in chosen)
    (BENCH_DIR / f"zoo_{name}.txt").write_text(captions + "\n")


def _judge(args) -> dict:
    facts = zoo.read_manifest(zoo.path("emoji-judge"))["facts"]
    return {k: v for k, v in facts.items() if "accuracy" in k or "identity" in k}


def _ddpm(name: str):
    def measure(args) -> dict:
        model = zoo.load(name)
        judge = zoo.load("emoji-judge")
        train_x, _ = emoji.images(model.unet.config.image_size, "train")
        labels = None
        if model.class_names is not None:
            labels = torch.arange(args.samples) % len(model.class_names)
        gens = [torch.Generator().manual_seed(k) for k in range(args.samples)]
        x = model.sample(args.samples, labels=labels, num_steps=args.steps, generator=gens)
        save_grid(x[:64], BENCH_DIR / f"zoo_{name}.png", nrow=8)
        nearest = _nearest_psnr(x, train_x)
        out = {
            "emoji_fd_to_train": emoji_fd(x, train_x, judge),
            "memorisation_rate": float((nearest >= COPY_PSNR_DB).float().mean()),
            "median_nearest_psnr_db": float(nearest.median()),
            "samples": args.samples,
            "ddim_steps": args.steps,
        }
        if labels is not None:
            out["judge_class_agreement"] = float((judge.classify(x) == labels).float().mean())
        return out

    return measure


def _nearest_psnr(x: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    flat = data.flatten(1)
    best = []
    for chunk in x.flatten(1).split(64):
        mse = torch.cdist(chunk.double(), flat.double()).square().min(dim=1).values / flat.shape[1]
        best.append(10 * torch.log10(4.0 / mse))
    return torch.cat(best).float()


MEASURES = {
    "emoji-vae": _vae,
    "emoji-t2i": _t2i("emoji-t2i"),
    "emoji-t2i-food": _t2i("emoji-t2i-food"),
    "emoji-judge": _judge,
    "emoji-ddpm": _ddpm("emoji-ddpm"),
    "emoji-ddpm-cond": _ddpm("emoji-ddpm-cond"),
}

if __name__ == "__main__":
    main()
