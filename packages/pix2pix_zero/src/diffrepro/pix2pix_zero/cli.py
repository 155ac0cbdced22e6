"""The ``pix2pix-zero`` command: make-direction, invert, edit, demo, cite.

::

    pix2pix-zero make-direction --src cat.txt --tgt dog.txt --out dirs/   # dirs/cat2dog.safetensors
    pix2pix-zero invert --image cat.png --caption "a photo of a cat" --out inv/
    pix2pix-zero edit --inversion inv/inversion.safetensors --task cat2dog --out edit/
    pix2pix-zero edit --inversion inv/inversion.safetensors --direction dirs/cat2dog.safetensors

Weights: ``--checkpoint`` (a diffusers folder, or a CompVis file with ``--tokenizer DIR``) or
``--model`` (the zoo's ``emoji-t2i``, the default, or ``sd-tiny`` for smoke tests). Every input is
checked before anything is written; outputs are written atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from diffrepro.core.cli import RUNS_DIR, add_common_args, paper_parser, run
from diffrepro.core.config import apply_overrides, config_to_dict, select_preset

from .config import METHODS
from .paper import PAPER


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)

    make = commands.add_parser("make-direction", help="edit direction from two sentence files")
    _common(make)
    make.add_argument("--src", type=Path, help="source sentences, one per line")
    make.add_argument("--tgt", type=Path, help="target sentences, one per line")
    make.add_argument("--task", help="SRC2TGT: template banks for words missing a file")
    make.add_argument("--name", help="file name (default: the task, or SRC2TGT of the files)")
    make.set_defaults(func=_make_direction)

    inv = commands.add_parser("invert", help="regularised DDIM inversion of one image")
    _common(inv)
    inv.add_argument("--image", type=Path, required=True, help="the input image")
    inv.add_argument("--caption", required=True, help="the image's caption (no captioner here)")
    inv.set_defaults(func=_invert)

    edit = commands.add_parser("edit", help="edit an inverted image along a direction")
    _common(edit)
    edit.add_argument("--inversion", type=Path, required=True, help="file from `invert`")
    edit.add_argument("--task", help="SRC2TGT (template sentence banks, or word swap)")
    edit.add_argument("--direction", type=Path, help="file from `make-direction`")
    edit.add_argument("--method", default="pix2pix-zero", choices=METHODS)
    edit.add_argument("--xa", type=float, help="lambda_xa (default: the preset's)")
    edit.add_argument("--cfg", type=float, help="CFG scale (default: the preset's)")
    edit.set_defaults(func=_edit)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


def _common(parser: argparse.ArgumentParser) -> None:
    add_common_args(parser, preset="paper")
    parser.add_argument("--model", help="emoji-t2i (zoo, default) or sd-tiny (random, tests)")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder for a CompVis file")


def _config(args):
    from .config import PRESETS

    return apply_overrides(select_preset(PRESETS, args.preset), args.overrides)


def _model(args):
    from diffrepro.core.repro import resolve_device

    from .model import load_model

    device = resolve_device(args.device)
    return load_model(args.checkpoint, args.model, tokenizer=args.tokenizer, device=device)


def _out(args, default: str) -> Path:
    return args.out if args.out is not None else RUNS_DIR / "pix2pix_zero" / default


def _make_direction(args) -> None:
    from .directions import (
        parse_task,
        read_sentences,
        save_direction,
        sentence_direction,
        template_sentences,
    )

    task = parse_task(args.task) if args.task else None
    if task is None and (args.src is None or args.tgt is None):
        raise ValueError("make-direction needs --src and --tgt files, or --task for templates")
    source = read_sentences(args.src) if args.src else template_sentences(task.source)
    target = read_sentences(args.tgt) if args.tgt else template_sentences(task.target)
    name = args.name or (task.name if task else f"{args.src.stem}2{args.tgt.stem}")
    if not name or "/" in name:
        raise ValueError(f"bad direction name {name!r}")
    cfg = _config(args)
    sd = _model(args)
    direction = sentence_direction(sd, source, target, cfg.sentence_batch)
    info = {"source_sentences": len(source), "target_sentences": len(target), "name": name}
    info["model"] = str(args.checkpoint or args.model or "emoji-t2i")
    path = save_direction(_out(args, "directions") / f"{name}.safetensors", direction, info)
    print(f"direction {tuple(direction.shape)}, norm {direction.norm():.4f}: {path}")


def _invert(args) -> None:
    from diffrepro.core.checkpoints import save_checkpoint
    from diffrepro.core.data import save_image
    from diffrepro.core.repro import seed_everything

    from .images import read_image
    from .pipeline import encode, start_latents

    if not args.caption.strip():
        raise ValueError("--caption is empty")
    cfg = _config(args)
    image = read_image(args.image, cfg.image_size)
    sd = _model(args)
    generator = seed_everything(args.seed)
    z0 = encode(sd, image, cfg, generator)
    x_t = start_latents(sd, z0, [args.caption], cfg, generator, progress=True)
    _check_finite(x_t, "the inverted latent")
    out = _out(args, "invert")
    info = {"caption": args.caption, "image": str(args.image), "config": config_to_dict(cfg)}
    path = save_checkpoint(out / "inversion.safetensors", {"x_t": x_t, "z0": z0}, info)
    save_image(image[0], out / "input.png")
    print(f"inverted {args.image} ({cfg.inversion.grid} grid, {cfg.inversion.num_steps} steps)")
    print(f"inversion: {path}")


def _read_inversion(path: Path):
    from diffrepro.core.checkpoints import load_checkpoint

    if not path.is_file():
        raise FileNotFoundError(f"inversion file not found: {path}")
    try:
        state, info = load_checkpoint(path)
    except Exception as err:  # a foreign or broken file: one clear line
        raise ValueError(f"cannot read inversion file {path}: {err}") from None
    if set(state) != {"x_t", "z0"} or "caption" not in info:
        raise ValueError(f"{path} is not an inversion file written by `pix2pix-zero invert`")
    return state["x_t"], state["z0"], info["caption"]


def _edit(args) -> None:
    from diffrepro.core.data import save_image
    from diffrepro.core.repro import seed_everything

    from .config import method_config
    from .directions import load_direction, parse_task, swap_word
    from .images import figure
    from .pipeline import make_direction, sdedit, translate

    if (args.task is None) == (args.direction is None) and args.method == "pix2pix-zero":
        raise ValueError("edit needs exactly one of --task or --direction")
    if args.method != "pix2pix-zero" and args.task is None:
        raise ValueError(f"--method {args.method} swaps words: it needs --task")
    cfg = method_config(_config(args), args.method)
    edit_cfg = cfg.edit
    if args.xa is not None:
        edit_cfg = dataclasses.replace(edit_cfg, xa_guidance=args.xa)
    if args.cfg is not None:
        edit_cfg = dataclasses.replace(edit_cfg, guidance_scale=args.cfg)
    cfg = dataclasses.replace(cfg, edit=edit_cfg)
    x_t, z0, caption = _read_inversion(args.inversion)
    task = parse_task(args.task) if args.task else None
    direction = load_direction(args.direction)[0] if args.direction else None
    if task is not None and (args.method != "pix2pix-zero" or cfg.direction == "word_swap"):
        swap_word(caption, task)  # a clear error before any work
    sd = _model(args)
    x_t, z0 = x_t.to(sd.device, sd.dtype), z0.to(sd.device, sd.dtype)
    generator = seed_everything(args.seed)
    losses: tuple[float, ...] = ()
    if args.method == "sdedit+word-swap":
        edited = sdedit(sd, z0, [swap_word(caption, task)], cfg, generator)
        recon = z0
    else:
        if direction is None:
            direction = make_direction(sd, [caption], task, cfg)
        result = translate(sd, x_t, [caption], direction, cfg, progress=True)
        edited, recon, losses = result.edited, result.reconstruction, result.xa_losses
    _check_finite(edited, "the edited latent")
    with torch.no_grad():
        images = [sd.decode_latents(z)[0].cpu() for z in (z0, recon, edited)]
    out = _out(args, "edit")
    save_image(images[2], out / "edited.png")
    save_image(images[1], out / "reconstruction.png")
    figure([images], out / "figure.png")
    summary = {"caption": caption, "method": args.method, "xa_losses": list(losses)}
    (out / "edit.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"edited ({args.method}): {out / 'edited.png'}")


def _check_finite(x: torch.Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} is not finite (lower --xa or the regulariser weights)")


if __name__ == "__main__":
    raise SystemExit(main())
