"""The ``sine`` command: train, edit, sample, demo, cite.

::

    sine train --image dog.png --class-word dog [--patch] --out runs/sine/dog
    sine edit --finetuned runs/sine/dog --prompt "a dog wearing a superhero cape" --v 0.6 --k 500
    sine sample --finetuned runs/sine/dog --prompt "photo of a sks dog"   # the fine-tuned alone
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from diffrepro.core import base_model_cli
from diffrepro.core.cli import (
    RUNS_DIR,
    add_common_args,
    existing_file,
    finite_float,
    nonnegative_int,
    paper_parser,
    positive_int,
    run,
)
from diffrepro.core.config import apply_overrides, select_preset

from .paper import PAPER


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)
    train = commands.add_parser("train", help="fine-tune a copy of the model on one image")
    add_common_args(train, preset="demo")
    base_model_cli.add_model_args(train)
    train.add_argument("--image", type=existing_file, required=True, help="the image to edit")
    train.add_argument("--class-word", required=True, help='coarse class, e.g. "dog"')
    train.add_argument("--patch", action="store_true", help="patch-based fine-tuning")
    train.set_defaults(func=_train)

    edit = commands.add_parser("edit", help="model-based classifier-free guidance")
    add_common_args(edit, preset="demo")
    base_model_cli.add_model_args(edit)
    edit.add_argument(
        "--finetuned", type=Path, action="append", required=True, help="`sine train` folder "
        "(repeatable: several guide models, each with its own --v and --k)",
    )  # fmt: skip
    edit.add_argument("--prompt", required=True, help="the edit prompt (pretrained model)")
    edit.add_argument(
        "--finetuned-prompt", action="append", default=None,
        help="identifier prompt per guide (default: its training caption)",
    )  # fmt: skip
    edit.add_argument("--v", type=finite_float, action="append", default=None, help="weight")
    edit.add_argument("--k", type=nonnegative_int, action="append", default=None, help="K")
    edit.add_argument("--height", type=positive_int, default=None, help="pixels")
    edit.add_argument("--width", type=positive_int, default=None, help="pixels")
    edit.set_defaults(func=_edit)

    sample = commands.add_parser("sample", help="sample the fine-tuned model alone (plain CFG)")
    add_common_args(sample, preset="demo")
    base_model_cli.add_model_args(sample)
    sample.add_argument("--finetuned", type=Path, required=True, help="`sine train` folder")
    sample.add_argument("--prompt", required=True)
    sample.add_argument("--height", type=positive_int, default=None, help="pixels")
    sample.add_argument("--width", type=positive_int, default=None, help="pixels")
    sample.set_defaults(func=_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


def _config(args: argparse.Namespace):
    from .config import PRESETS

    cfg = apply_overrides(select_preset(PRESETS, args.preset), args.overrides)
    if getattr(args, "patch", False):
        cfg = dataclasses.replace(cfg, patch=True)
    return cfg


def _check_prompt(sd, prompt: str, flag: str) -> None:
    if not prompt.strip():
        raise ValueError(f"{flag} is empty")
    base_model_cli.check_prompt_length(sd, prompt, flag)


def _train(args: argparse.Namespace) -> None:
    from diffrepro.core.finetune import load_image_resized
    from diffrepro.core.repro import seed_everything

    from .finetune import finetune
    from .saving import META, save_finetuned

    cfg = _config(args)
    out = args.out or RUNS_DIR / "sine" / "train"
    if (out / META).exists() or (out / "train").exists():
        raise ValueError(f"{out} already holds a SINE run; choose a new --out")
    word = args.class_word.strip()
    if not word or len(word.split()) != 1:
        raise ValueError(f"--class-word must be one word, got {args.class_word!r}")
    source = base_model_cli.model_source(args)
    sd = base_model_cli.open_model(source, args, cfg.dtype)
    factor = sd.vae.downscale_factor
    if cfg.resolution % factor:
        raise ValueError(f"resolution {cfg.resolution} is not a multiple of the VAE's {factor}")
    caption = cfg.caption.format(word)
    _check_prompt(sd, caption, "the caption")
    size = cfg.high_resolution if cfg.patch else cfg.resolution
    image = load_image_resized(args.image, size, size)
    seed_everything(args.seed)
    result = finetune(sd, image, word, cfg, out / "train", seed=args.seed)
    save_finetuned(out, sd, caption, word, cfg, source)
    kind = "patch-based" if cfg.patch else "single-image"
    print(
        f"{kind} fine-tuning on {caption!r}: {result.step} steps, final loss "
        f"{result.losses[-1]:.4f}: {out}"
    )


def _per_guide(values, n: int, default, flag: str) -> list:
    if values is None:
        return [default] * n
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        raise ValueError(f"give {flag} once or once per --finetuned ({n}), got {len(values)}")
    return list(values)


def _edit(args: argparse.Namespace) -> None:
    from diffrepro.core.seeded_sampling import decode_clamped

    from .editing import edit, make_guide
    from .guidance import Window
    from .saving import load_finetuned, read_meta

    cfg = _config(args)
    n = len(args.finetuned)
    vs = _per_guide(args.v, n, cfg.v, "--v")
    ks = _per_guide(args.k, n, cfg.k_min, "--k")
    prompts = _per_guide(args.finetuned_prompt, n, None, "--finetuned-prompt")
    for k in ks:
        if k > cfg.k_max:
            raise ValueError(f"--k {k} lies above k_max {cfg.k_max}")
    metas = [read_meta(folder) for folder in args.finetuned]
    source = base_model_cli.model_source(args, fallback=metas[0]["model"])
    base = base_model_cli.open_model(source, args, cfg.dtype)
    _check_prompt(base, args.prompt, "--prompt")
    guides = []
    for folder, v, k, prompt in zip(args.finetuned, vs, ks, prompts):
        tuned = load_finetuned(folder, base)
        if prompt is not None:
            _check_prompt(base, prompt, "--finetuned-prompt")
        guides.append(make_guide(tuned, v, Window(k, cfg.k_max, cfg.window_rule), prompt))
    height, width = _size(base, cfg, args)
    seeds = [args.seed + i for i in range(cfg.num_samples)]
    latents = edit(
        base, args.prompt, guides, seeds=seeds, height=height, width=width,
        guidance_scale=cfg.guidance_scale, num_steps=cfg.num_steps, ddim_eta=cfg.ddim_eta,
    )  # fmt: skip
    _save(decode_clamped(base, latents), seeds, args.out or RUNS_DIR / "sine" / "edit", "edit")


def _sample(args: argparse.Namespace) -> None:
    from diffrepro.core.seeded_sampling import decode_clamped

    from .editing import edit
    from .saving import load_finetuned, read_meta

    cfg = _config(args)
    meta = read_meta(args.finetuned)
    source = base_model_cli.model_source(args, fallback=meta["model"])
    base = base_model_cli.open_model(source, args, cfg.dtype)
    tuned = load_finetuned(args.finetuned, base)
    _check_prompt(base, args.prompt, "--prompt")
    height, width = _size(base, cfg, args)
    seeds = [args.seed + i for i in range(cfg.num_samples)]
    latents = edit(
        tuned.sd, args.prompt, [], seeds=seeds, height=height, width=width,
        guidance_scale=cfg.guidance_scale, num_steps=cfg.num_steps, ddim_eta=cfg.ddim_eta,
    )  # fmt: skip
    _save(decode_clamped(base, latents), seeds, args.out or RUNS_DIR / "sine" / "sample", "sample")


def _size(sd, cfg, args: argparse.Namespace) -> tuple[int, int]:
    height = args.height if args.height is not None else cfg.resolution
    width = args.width if args.width is not None else cfg.resolution
    factor = sd.vae.downscale_factor
    if height % factor or width % factor:
        raise ValueError(
            f"--height and --width must be multiples of {factor}, got {height}x{width}"
        )
    return height, width


def _save(images, seeds: list[int], out: Path, stem: str) -> None:
    from diffrepro.core.data import save_grid, save_image

    for image, seed in zip(images, seeds):
        save_image(image, out / f"{stem}_seed_{seed}.png")
    grid = save_grid(images, out / f"{stem}s.png")
    print(f"{len(images)} image(s): {grid}")


if __name__ == "__main__":
    raise SystemExit(main())
