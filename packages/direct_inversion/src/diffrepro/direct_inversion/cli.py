"""The ``direct-inversion`` command: edit, sweep, demo, cite.

::

    direct-inversion edit --checkpoint stable-diffusion-v1-4 --image in.png \\
        --prompt "black dress shoes" --guidance 3 --lam 0.5 --steps 100 --inv-steps 100
    direct-inversion sweep --checkpoint emoji-t2i --image in.png --prompt "..." \\
        --guidance-values 1,3,5 --lam-values 0,0.5,0.9,1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffrepro.core.cli import RUNS_DIR, add_common_args, paper_parser, run
from diffrepro.core.config import apply_overrides, select_preset

from .paper import PAPER

SLUG = "direct_inversion"


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)
    edit = commands.add_parser("edit", help="edit one image with a text prompt")
    _edit_args(edit)
    edit.set_defaults(func=_edit)
    sweep = commands.add_parser("sweep", help="the (guidance, lambda) grid on one image")
    _edit_args(sweep)
    sweep.add_argument(
        "--guidance-values", default="1,3,5", help="comma-separated w values (default 1,3,5)"
    )
    sweep.add_argument(
        "--lam-values", default="0,0.5,0.9,1", help="comma-separated λ values (default 0,0.5,0.9,1)"
    )
    sweep.set_defaults(func=_sweep)
    return parser


def _edit_args(sub: argparse.ArgumentParser) -> None:
    add_common_args(sub, preset="paper")
    sub.add_argument("--image", type=Path, required=True, help="the image to edit")
    sub.add_argument("--prompt", required=True, help="the target text")
    sub.add_argument("--guidance", type=float, default=None, help="CFG scale w (paper: 3)")
    sub.add_argument("--lam", type=float, default=None, help="noise-merge λ in [0, 1] (paper: 0.5)")
    sub.add_argument("--steps", type=int, default=None, help="editing steps N (paper: 100)")
    sub.add_argument("--inv-steps", type=int, default=None, help="inversion steps (= N)")
    sub.add_argument(
        "--inject-steps", type=int, default=None, help="blend the first K steps (default all)"
    )
    sub.add_argument("--grid", default=None, help="consistent (default) or official")
    sub.add_argument("--inversion-prompt", default=None, help='the inversion text (default "")')
    sub.add_argument(
        "--tokenizer", type=Path, default=None, help="CLIP tokenizer folder for a CompVis file"
    )
    sub.add_argument("--dtype", default="float32", help="float32 (default), float16 or float64")


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


def _config(args: argparse.Namespace):
    from .config import PRESETS, with_values

    cfg = apply_overrides(select_preset(PRESETS, args.preset), args.overrides)
    return with_values(
        cfg,
        guidance=args.guidance,
        lam=args.lam,
        steps=args.steps,
        inv_steps=args.inv_steps,
        inject_steps=args.inject_steps,
        grid=args.grid,
        inversion_prompt=args.inversion_prompt,
    )


def _prepare(args: argparse.Namespace):
    """Everything that can fail on bad input, before anything is written."""
    import torch

    from diffrepro.core.data import load_image
    from diffrepro.core.repro import resolve_device, seed_everything

    from .images import check_size, native_size, to_square
    from .weights import load_model, parse_dtype

    cfg = _config(args)
    if args.checkpoint is None:
        raise ValueError(
            "--checkpoint is required: a diffusers SD folder, a CompVis file (with --tokenizer), "
            "emoji-t2i or sd-tiny"
        )
    dtype = parse_dtype(args.dtype)
    device = resolve_device(args.device)
    image = load_image(args.image)
    sd = load_model(args.checkpoint, tokenizer=args.tokenizer, dtype=dtype, device=device)
    size = native_size(sd) if cfg.image_size is None else cfg.image_size
    check_size(sd, size)
    image = to_square(image, size)
    seed_everything(args.seed)
    generator = torch.Generator(device).manual_seed(args.seed)
    return cfg, sd, image[None].to(device, dtype), generator


def _edit(args: argparse.Namespace) -> None:
    from .editing import direct_inversion
    from .outputs import write_edit

    cfg, sd, image, generator = _prepare(args)
    result = direct_inversion(sd, image, args.prompt, cfg, generator=generator, progress=True)
    out = args.out or RUNS_DIR / SLUG / "edit"
    metrics = write_edit(out, cfg, image, result, args.prompt)
    print(f"edited: {out / 'edited.png'}  latent distance {metrics['latent_rel']:.4f}")


def _sweep(args: argparse.Namespace) -> None:
    from .outputs import write_sweep
    from .sweep import parse_values, sweep

    ws = parse_values(args.guidance_values, "--guidance-values")
    lams = parse_values(args.lam_values, "--lam-values")
    cfg, sd, image, generator = _prepare(args)
    result = sweep(sd, image, args.prompt, cfg, ws, lams, generator=generator, progress=True)
    out = args.out or RUNS_DIR / SLUG / "sweep"
    write_sweep(out, cfg, image, result, args.prompt)
    print(f"sweep: {out / 'grid.png'}  ({len(ws)} x {len(lams)} edits)")


if __name__ == "__main__":
    raise SystemExit(main())
