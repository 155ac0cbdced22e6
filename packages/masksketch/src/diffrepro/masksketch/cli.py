"""The ``masksketch`` command: ``generate``, ``demo`` and ``cite``.

``masksketch generate --sketch S.png --class N --lambda-s 0.6 --candidates 8`` samples K
candidates guided by the sketch and keeps the best one. Without ``--checkpoint`` and
``--tokenizer`` it uses the zoo's emoji MaskGIT (``maskgit-emoji-*``, never built here); with
them, any MaskGIT the maskgit package opens (ours, the official Flax files, PyTorch ports).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from diffrepro.core.cli import (
    add_common_args,
    existing_file,
    finite_float,
    paper_parser,
    positive_int,
    run,
)
from diffrepro.masksketch.paper import PAPER


def _layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expects comma-separated layer indices, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)
    gen = commands.add_parser("generate", help="sketch-guided class-conditional generation")
    gen.add_argument("--sketch", type=existing_file, required=True, help="square sketch image")
    gen.add_argument("--class", dest="label", type=int, required=True, help="class label (0-based)")
    gen.add_argument(
        "--edges",
        choices=("canny", "sobel"),
        default=None,
        help="treat --sketch as a photo and use its edge map (default: use it as drawn)",
    )
    gen.add_argument("--lambda-s", type=finite_float, default=None, help="λs (preset: 0.9)")
    gen.add_argument("--candidates", type=positive_int, default=None, help="K (preset: 8)")
    gen.add_argument("--steps", type=positive_int, default=None, help="iterations T")
    gen.add_argument("--guidance", type=finite_float, default=None, help="CFG scale (0.6)")
    gen.add_argument("--mode", default=None, help="structure distance: sym_ce or sym_kl")
    gen.add_argument("--layers", type=_layers, default=None, help="attention layers, e.g. 0,2")
    gen.add_argument("--scorer", default=None, help="structure, classifier or random")
    gen.add_argument("--tokenizer", type=Path, default=None, help="tokenizer weights")
    add_common_args(gen)
    gen.set_defaults(func=_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


def _config(args: argparse.Namespace):
    from diffrepro.core.config import apply_overrides, select_preset
    from diffrepro.masksketch.config import PRESETS

    cfg = apply_overrides(select_preset(PRESETS, args.preset), args.overrides)
    knobs = {
        "lambda_structure": args.lambda_s,
        "candidates": args.candidates,
        "num_iter": args.steps,
        "guidance_scale": args.guidance,
        "structure_mode": args.mode,
        "layers": args.layers,
        "scorer": args.scorer,
        "sketch_method": args.edges,
    }
    return replace(cfg, **{k: v for k, v in knobs.items() if v is not None})


def _models(args: argparse.Namespace, device):
    """(transformer, tokenizer, description, from the zoo)."""
    from diffrepro.maskgit.loading import load_tokenizer, load_transformer

    if (args.checkpoint is None) != (args.tokenizer is None):
        raise ValueError("--checkpoint and --tokenizer go together (neither: the zoo emoji models)")
    if args.checkpoint is None:
        from diffrepro.core import zoo
        from diffrepro.maskgit.emoji_models import TOKENIZER, TRANSFORMER

        model = zoo.load(TRANSFORMER, device=str(device), build=False)
        tokenizer = zoo.load(TOKENIZER, device=str(device), build=False)
        return model.eval(), tokenizer.eval(), f"zoo {TRANSFORMER} + {TOKENIZER}", True
    model = load_transformer(args.checkpoint).to(device).eval()
    tokenizer = load_tokenizer(args.tokenizer).to(device).eval()
    return model, tokenizer, f"{args.checkpoint} + {args.tokenizer}", False


def _scorer(cfg, model, from_zoo: bool, generator, device):
    from diffrepro.masksketch import rejection

    if cfg.scorer == "structure":
        return rejection.structure_scorer(model, cfg)
    if cfg.scorer == "random":
        return rejection.random_scorer(generator)
    if not from_zoo:
        raise ValueError("--scorer classifier needs the zoo emoji models (its judge's classes)")
    from diffrepro.core import zoo

    judge = zoo.load("emoji-judge", device=str(device), build=False).eval()
    return rejection.classifier_scorer(lambda x: judge.class_logits(x * 2 - 1))


def _generate(args: argparse.Namespace) -> None:
    import torch

    from diffrepro.core.config import save_config
    from diffrepro.core.data import save_grid
    from diffrepro.core.repro import resolve_device, seed_everything
    from diffrepro.masksketch.generation import generate
    from diffrepro.masksketch.progress import step_progress
    from diffrepro.masksketch.rejection import select
    from diffrepro.masksketch.sketches import edge_sketch, load_sketch

    cfg = _config(args)
    device = resolve_device(args.device)
    model, tokenizer, source, from_zoo = _models(args, device)
    cfg.layers_for(model.config.depth)
    size = tokenizer.config.downsample * model.config.latent_size
    if args.edges is not None:
        sketch = edge_sketch(load_sketch(args.sketch, size * 4), size, args.edges)
    else:
        sketch = load_sketch(args.sketch, size)
    seed_everything(args.seed)
    gen = torch.Generator(device).manual_seed(args.seed)
    scorer = _scorer(cfg, model, from_zoo, gen, device)
    labels = torch.tensor([args.label], device=device)
    tick, close = step_progress(cfg.num_iter)
    try:
        out = generate(model, tokenizer, sketch.to(device), labels, cfg, gen, tick)
    finally:
        close()
    best, index = select(out, scorer)
    folder = args.out or Path("runs/masksketch/generate")
    save_grid(best * 2 - 1, folder / "best.png")
    save_grid(out.images * 2 - 1, folder / "candidates.png")
    save_grid(torch.cat([sketch.to(best.device), best]) * 2 - 1, folder / "comparison.png")
    save_config(cfg, folder / "masksketch_config.json")
    distance = float(out.result.distance[index[0]])
    print(
        f"wrote {folder / 'best.png'} (candidate {int(index[0])} of {cfg.candidates} by "
        f"{cfg.scorer}; structure distance {distance:.4f}; models: {source})"
    )
