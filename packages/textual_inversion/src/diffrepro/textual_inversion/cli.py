"""The ``textual-inversion`` command: train, sample, convert, demo, cite."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from diffrepro.core.cli import RUNS_DIR, add_common_args, paper_parser, run
from diffrepro.core.config import apply_overrides, config_to_dict, save_config, select_preset

from .base import TINY_MODEL, ZOO_MODEL
from .formats import FORMATS
from .paper import PAPER


def _base_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help=f"base model by name: {ZOO_MODEL} (core zoo) or {TINY_MODEL} (random, for tests); "
        f"default {ZOO_MODEL}, {TINY_MODEL} with --preset tiny",
    )
    parser.add_argument(
        "--tokenizer", type=Path, default=None, help="tokenizer folder for a CompVis --checkpoint"
    )


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)

    train = commands.add_parser("train", help="learn a placeholder's embedding from 3-5 images")
    add_common_args(train, preset="demo")
    train.set_defaults(func=_train)
    train.add_argument("--data", type=Path, required=True, help="folder of the concept images")
    train.add_argument("--token", required=True, help='the new pseudo-word, e.g. "<cat-toy>"')
    train.add_argument("--init", default=None, help="single-token initializer word, e.g. toy")
    train.add_argument("--num-vectors", type=int, default=None, help="vectors per placeholder")
    train.add_argument("--style", action="store_true", help="learn a style (style templates)")
    _base_args(train)

    sample = commands.add_parser("sample", help="sample prompts that use learned embeddings")
    add_common_args(sample, preset="demo")
    sample.set_defaults(func=_sample)
    sample.add_argument(
        "--embeds", type=Path, action="append", required=True, help="embedding file (repeatable)"
    )
    sample.add_argument("--token", default=None, help="register the (single) --embeds as this")
    sample.add_argument("--prompt", required=True, help='e.g. "a photo of a <cat-toy>"')
    _base_args(sample)

    convert = commands.add_parser("convert", help="rewrite an embedding file in another format")
    convert.set_defaults(func=_convert)
    convert.add_argument("source", type=Path, help="any supported embedding file")
    convert.add_argument("dest", type=Path, help="file to write (must not exist)")
    convert.add_argument("--format", required=True, choices=FORMATS)
    convert.add_argument("--token", default=None, help="token name to store (default: the file's)")
    convert.add_argument(
        "--token-id", type=int, default=None, help="token id stored by --format official"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


def _config(args: argparse.Namespace):
    from .config import PRESETS

    return apply_overrides(select_preset(PRESETS, args.preset), args.overrides)


def _model_name(args: argparse.Namespace) -> str:
    return args.model or (TINY_MODEL if args.preset == "tiny" else ZOO_MODEL)


def _load_base(args: argparse.Namespace):
    from diffrepro.core.repro import resolve_device

    from .base import load_base

    device = resolve_device(args.device)
    return load_base(
        model=_model_name(args), checkpoint=args.checkpoint, tokenizer=args.tokenizer, device=device
    )


def _train(args: argparse.Namespace) -> None:
    from diffrepro.core.repro import seed_everything

    from .images import load_concept_images
    from .placeholders import add_placeholder, check_fits, check_token
    from .templates import templates_for
    from .training import train_embedding

    cfg = _config(args)
    if args.num_vectors is not None:
        cfg = dataclasses.replace(cfg, num_vectors=args.num_vectors)
    if args.style:
        cfg = dataclasses.replace(cfg, learnable_property="style")
    check_token(args.token)
    images = load_concept_images(args.data, cfg.resolution)
    out = args.out or RUNS_DIR / "textual_inversion" / "train"
    run_info = {
        "token": args.token,
        "init": args.init,
        "model": str(args.checkpoint) if args.checkpoint else _model_name(args),
        "config": {k: v for k, v in config_to_dict(cfg).items() if k != "steps"},
    }
    _check_resume(out, run_info)
    sd = _load_base(args)
    factor = sd.vae.downscale_factor
    if cfg.resolution % factor:
        raise ValueError(f"resolution {cfg.resolution} is not a multiple of the VAE's {factor}")
    placeholder = add_placeholder(
        sd.tokenizer, sd.text_encoder, args.token, init=args.init, num_vectors=cfg.num_vectors
    )
    templates = templates_for(cfg.learnable_property, cfg.object_templates)
    check_fits(sd.tokenizer, [t.format(placeholder.text) for t in templates])
    seed_everything(args.seed)
    save_config(cfg, out / "config.json")
    (out / "run.json").write_text(json.dumps(run_info, indent=2, sort_keys=True) + "\n")
    result = train_embedding(sd, images, placeholder, cfg, out, seed=args.seed)
    print(
        f"learned {placeholder.text!r} from {len(images)} images in {cfg.steps} steps "
        f"(lr {result.lr:g}, final loss {result.losses[-1]:.4f}): {result.embeds}"
    )


def _check_resume(out: Path, run_info: dict) -> None:
    """A folder holding a run is resumed only with the same token, model and settings (more
    steps are allowed: that continues the run)."""
    saved = out / "run.json"
    if not saved.is_file():
        return
    try:
        before = json.loads(saved.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{saved} is not valid JSON: {err}") from None
    if before != run_info:
        changed = sorted(k for k in run_info if before.get(k) != run_info[k])
        raise ValueError(
            f"{out} holds a run with other settings ({', '.join(changed)}); "
            "choose a new --out to start another"
        )


def _sample(args: argparse.Namespace) -> None:
    from diffrepro.core.data import save_grid, save_image

    from .embeds import load_embeds
    from .sampling import sample_images

    cfg = _config(args)
    if args.token is not None and len(args.embeds) != 1:
        raise ValueError("--token renames one embedding: give exactly one --embeds")
    for path in args.embeds:
        if not path.is_file():
            raise FileNotFoundError(f"embedding file not found: {path}")
    sd = _load_base(args)
    placeholders = [load_embeds(sd, path, token=args.token) for path in args.embeds]
    unused = [p.token for p in placeholders if p.token.lower() not in args.prompt.lower()]
    if unused:
        print(
            f"textual-inversion: note: the prompt does not use {', '.join(unused)}", file=sys.stderr
        )
    images = sample_images(
        sd,
        args.prompt,
        placeholders,
        num_samples=cfg.num_samples,
        num_steps=cfg.sample_steps,
        guidance_scale=cfg.guidance_scale,
        seed=args.seed,
    )
    out = args.out or RUNS_DIR / "textual_inversion" / "sample"
    for k, image in enumerate(images):
        save_image(image, out / f"sample_{k:03d}.png")
    grid = save_grid(images, out / "samples.png")
    print(f"{len(images)} samples of {args.prompt!r}: {grid}")


def _convert(args: argparse.Namespace) -> None:
    from .formats import read_embeds, save_embeds

    if args.dest.exists():
        raise ValueError(f"{args.dest} exists; choose a new file name")
    token, rows = read_embeds(args.source, args.token)
    save_embeds(args.dest, token, rows, format=args.format, token_id=args.token_id)
    print(f"{token!r} ({rows.shape[0]} x {rows.shape[1]}) written as {args.format}: {args.dest}")


if __name__ == "__main__":
    raise SystemExit(main())
