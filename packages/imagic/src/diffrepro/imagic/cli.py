"""The ``imagic`` command: edit (train + sample), train, sample, demo, cite.

::

    imagic edit --image in.png --prompt "a photo of a sitting dog" --eta 0.7
    imagic train --image in.png --prompt "..." --out runs/imagic/dog     # stages A and B
    imagic sample --finetuned runs/imagic/dog --eta 0.6 0.7 0.8          # stage C
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from diffrepro.core import base_model_cli
from diffrepro.core.cli import (
    RUNS_DIR,
    add_common_args,
    existing_file,
    finite_float,
    paper_parser,
    run,
)
from diffrepro.core.config import apply_overrides, select_preset

from .paper import PAPER


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)
    edit = commands.add_parser("edit", help="stages A, B and C on one image")
    _train_args(edit)
    _sample_args(edit)
    edit.set_defaults(func=_edit)
    train = commands.add_parser("train", help="stages A and B: e_opt and the fine-tuned UNet")
    _train_args(train)
    train.set_defaults(func=_train)
    sample = commands.add_parser("sample", help="stage C from an `imagic train` folder")
    add_common_args(sample, preset="demo")
    base_model_cli.add_model_args(sample)
    sample.add_argument("--finetuned", type=Path, required=True, help="an `imagic train` --out")
    _sample_args(sample)
    sample.set_defaults(func=_sample)
    return parser


def _train_args(parser: argparse.ArgumentParser) -> None:
    add_common_args(parser, preset="demo")
    base_model_cli.add_model_args(parser)
    parser.add_argument("--image", type=existing_file, required=True, help="the image to edit")
    parser.add_argument("--prompt", required=True, help='target text, e.g. "a sitting dog"')
    parser.add_argument("--no-stage-a", action="store_true", help="ablation: e_opt = e_tgt")
    parser.add_argument("--no-stage-b", action="store_true", help="ablation: no fine-tuning")


def _sample_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--eta", type=finite_float, nargs="+", default=None, help="weight(s) on e_tgt"
    )


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


def _config(args: argparse.Namespace):
    from .config import PRESETS

    cfg = apply_overrides(select_preset(PRESETS, args.preset), args.overrides)
    if getattr(args, "no_stage_a", False):
        cfg = dataclasses.replace(cfg, stage_a=False)
    if getattr(args, "no_stage_b", False):
        cfg = dataclasses.replace(cfg, stage_b=False)
    return cfg


def _fit(args: argparse.Namespace, out: Path):
    from diffrepro.core.finetune import load_image_resized
    from diffrepro.core.repro import seed_everything

    from .pipeline import RUN, fit, save_run

    cfg = _config(args)
    if not args.prompt.strip():
        raise ValueError("--prompt is empty: give the target text")
    if (out / RUN).exists() or (out / "stage_a").exists() or (out / "stage_b").exists():
        raise ValueError(f"{out} already holds an Imagic run; choose a new --out")
    source = base_model_cli.model_source(args)
    sd = base_model_cli.open_model(source, args, cfg.dtype)
    factor = sd.vae.downscale_factor
    if cfg.resolution % factor:
        raise ValueError(f"resolution {cfg.resolution} is not a multiple of the VAE's {factor}")
    base_model_cli.check_prompt_length(sd, args.prompt, "--prompt")
    image = load_image_resized(args.image, cfg.resolution, cfg.resolution)
    seed_everything(args.seed)
    fitted = fit(sd, image, args.prompt, cfg, out, args.seed)
    save_run(out, sd, fitted, args.prompt, cfg, source)
    print(
        f"stage A {len(fitted.losses_a)} steps, stage B {len(fitted.losses_b)} steps "
        f"(final losses {_last(fitted.losses_a)} / {_last(fitted.losses_b)}): {out}"
    )
    return sd, fitted, cfg


def _last(losses: list[float]) -> str:
    return f"{losses[-1]:.4f}" if losses else "-"


def _train(args: argparse.Namespace) -> None:
    _fit(args, args.out or RUNS_DIR / "imagic" / "train")


def _edit(args: argparse.Namespace) -> None:
    out = args.out or RUNS_DIR / "imagic" / "edit"
    sd, fitted, cfg = _fit(args, out)
    _write_samples(sd, fitted.e_tgt, fitted.e_opt, cfg, args, out)


def _sample(args: argparse.Namespace) -> None:
    from .pipeline import load_run

    cfg = _config(args)
    saved = load_run(args.finetuned)
    source = base_model_cli.model_source(args, fallback=saved.model)
    sd = base_model_cli.open_model(source, args, cfg.dtype)
    if saved.e_tgt.shape[1:] != sd.encode_prompt("").shape[1:]:
        raise ValueError(
            f"{args.finetuned}: embeddings of shape {tuple(saved.e_tgt.shape)} do not fit the "
            "base model's text encoder"
        )
    if saved.unet is not None:
        sd.unet = saved.unet.to(sd.device, sd.dtype).eval()
    out = args.out or RUNS_DIR / "imagic" / "sample"
    _write_samples(sd, saved.e_tgt, saved.e_opt, cfg, args, out)


def _write_samples(sd, e_tgt, e_opt, cfg, args: argparse.Namespace, out: Path) -> None:
    from diffrepro.core.data import save_grid, save_image
    from diffrepro.core.seeded_sampling import decode_clamped

    from .sampling import sample_embedding
    from .stages import interpolate

    etas = args.eta if args.eta is not None else [cfg.eta]
    outside = [f"{eta:g}" for eta in etas if not 0.0 <= eta <= 1.0]
    if outside:
        print(f"imagic: note: eta {', '.join(outside)} extrapolates beyond [0, 1]", file=sys.stderr)
    seeds = [args.seed + k for k in range(cfg.num_samples)]
    size = cfg.resolution
    rows = []
    for eta in etas:
        e_bar = interpolate(e_tgt.to(sd.device), e_opt.to(sd.device), eta)
        latents = sample_embedding(
            sd, e_bar, seeds=seeds, height=size, width=size,
            guidance_scale=cfg.guidance_scale, num_steps=cfg.num_steps, ddim_eta=cfg.ddim_eta,
        )  # fmt: skip
        images = decode_clamped(sd, latents)
        for k, image in enumerate(images):
            save_image(image, out / f"eta_{eta:g}_seed_{seeds[k]}.png")
        rows.append(images)
    import torch

    grid = save_grid(torch.cat(rows), out / "samples.png", nrow=len(seeds))
    print(f"{len(etas)} eta value(s) x {len(seeds)} seed(s): {grid}")


if __name__ == "__main__":
    raise SystemExit(main())
