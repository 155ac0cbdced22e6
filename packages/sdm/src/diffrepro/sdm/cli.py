"""The ``sdm`` command: ``train``, ``inpaint``, ``demo`` and ``cite``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from diffrepro.core.cli import add_common_args, existing_dir, paper_parser, run
from diffrepro.sdm.paper import PAPER

if TYPE_CHECKING:
    import torch

    from diffrepro.sdm.config import SDMConfig


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)
    train = commands.add_parser("train", help="train SDM from scratch on a folder of images")
    train.add_argument("--data", type=existing_dir, required=True, help="folder of training images")
    add_common_args(train)
    train.add_argument(
        "--no-resume",
        action="store_true",
        help="start a fresh run (refused when --out already holds an earlier run's checkpoints)",
    )
    train.set_defaults(func=_train)
    inpaint = commands.add_parser(
        "inpaint", help="fill the holes of one image, iteration by iteration"
    )
    inpaint.add_argument("--input", type=Path, required=True, help="image to inpaint")
    inpaint.add_argument(
        "--mask", type=Path, default=None, help="mask image: white = known, black = hole"
    )
    inpaint.add_argument(
        "--mask-kind", choices=("large", "small"), default="large", help="generated mask set"
    )
    add_common_args(inpaint)
    inpaint.set_defaults(func=_inpaint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


def _train(args: argparse.Namespace) -> None:
    from diffrepro.core.config import apply_overrides, select_preset
    from diffrepro.core.data import ImageFolder
    from diffrepro.core.repro import resolve_device
    from diffrepro.core.train import check_run_dir, latest_checkpoint
    from diffrepro.sdm.config import PRESETS
    from diffrepro.sdm.data import random_crops
    from diffrepro.sdm.train import train

    cfg = apply_overrides(select_preset(PRESETS, args.preset), args.overrides)
    device = resolve_device(args.device)
    out = args.out if args.out is not None else Path("runs/sdm/train")
    check_run_dir(out, resume=not args.no_resume)  # before anything is written
    resuming = not args.no_resume and latest_checkpoint(out) is not None
    if not resuming and (out / "generator_ema.safetensors").exists():
        raise ValueError(
            f"--out {out} already holds a trained generator (generator_ema.safetensors) "
            "without checkpoints to resume from; sdm train never overwrites one: choose a new --out"
        )
    if resuming and args.checkpoint is not None:
        raise ValueError(
            f"--checkpoint {args.checkpoint}: --out {out} already holds a run, which is resumed "
            "from its own checkpoints; use a new --out to start from --checkpoint"
        )
    folder = ImageFolder(args.data)
    images = [folder[i] for i in range(len(folder))]
    small = [f for f, im in zip(folder.files, images) if min(im.shape[1:]) < cfg.resolution]
    if small:
        raise ValueError(
            f"{small[0]} is smaller than the {cfg.resolution}x{cfg.resolution} training crops "
            f"({len(small)} image(s) of {args.data} are)"
        )
    init = _init_weights(args.checkpoint, cfg) if args.checkpoint else None
    train(
        cfg,
        lambda n, gen: random_crops(images, n, cfg.resolution, gen, flip=cfg.train.flip),
        out,
        device=device,
        seed=args.seed,
        init_generator=init,
        resume=not args.no_resume,
    )
    print(f"checkpoint: {out / 'generator_ema.safetensors'}")


def _inpaint(args: argparse.Namespace) -> None:
    import torch

    from diffrepro.core.cli import preset_given, reject_together
    from diffrepro.core.config import apply_overrides
    from diffrepro.core.data import load_image, save_image
    from diffrepro.core.repro import resolve_device, seed_everything
    from diffrepro.sdm.decoding import inpaint
    from diffrepro.sdm.figure import iteration_figure
    from diffrepro.sdm.loading import load_generator
    from diffrepro.sdm.masks import load_mask

    reject_together(
        args, "--preset", "--checkpoint", "the checkpoint carries its own config (use --set)"
    )
    image = load_image(args.input)
    mask = load_mask(args.mask) if args.mask else None
    device = resolve_device(args.device)
    if preset_given(args) and str(args.preset) != "emoji":
        raise ValueError(
            f"--preset {args.preset}: without --checkpoint, inpaint uses the zoo model sdm-emoji "
            "(preset emoji); pass --checkpoint for another model"
        )
    generator, cfg = load_generator(args.checkpoint)
    cfg = apply_overrides(cfg, args.overrides)
    size = cfg.resolution
    for name, tensor in ((args.input, image), (args.mask, mask)):
        if tensor is not None and tuple(tensor.shape[1:]) != (size, size):
            raise ValueError(
                f"{name} is {tensor.shape[2]}×{tensor.shape[1]}; the model takes {size}×{size}"
            )
    seed_everything(args.seed)
    mask = _checked_mask(mask if mask is not None else _generated_mask(cfg, args))
    image, mask = image[None].to(device), mask.to(device)
    with torch.no_grad():
        generator_rng = torch.Generator(device).manual_seed(args.seed)
        steps = inpaint(generator.to(device), image, mask, cfg.decode, generator_rng)
    out = args.out if args.out is not None else Path("runs/sdm/inpaint")
    save_image(steps[-1].image[0], out / "inpainted.png")
    save_image(mask[0].expand(3, -1, -1) * 2 - 1, out / "mask.png")
    iteration_figure(image, mask, steps, out / "iterations.png")
    print(f"wrote {out / 'inpainted.png'} and {out / 'iterations.png'}")


def _init_weights(path: Path, cfg: SDMConfig) -> dict[str, torch.Tensor]:
    """Generator weights to start from: an ``sdm train`` checkpoint whose network matches."""
    from diffrepro.sdm.loading import generator_from_checkpoint

    generator, saved = generator_from_checkpoint(path)
    if saved.network != cfg.network:
        raise ValueError(
            f"--checkpoint {path} holds a generator with another network config than the "
            f"{cfg.resolution}x{cfg.resolution} one being trained"
        )
    return generator.state_dict()


def _generated_mask(cfg: SDMConfig, args: argparse.Namespace) -> torch.Tensor:
    """A MAT-style mask (1, H, W) of the requested kind, seeded by --seed."""
    import numpy as np
    import torch

    from diffrepro.sdm.masks import MaskConfig, generate_mask

    masks_cfg = MaskConfig(cfg.resolution, args.mask_kind, cfg.masks.hole_range)
    return torch.from_numpy(generate_mask(masks_cfg, np.random.default_rng(args.seed)))[None]


def _checked_mask(mask: torch.Tensor) -> torch.Tensor:
    """(1, H, W) → (1, 1, H, W), with 1 = known asserted and at least one hole pixel."""
    from diffrepro.sdm.masks import assert_mask

    mask = mask[None]
    assert_mask(mask)
    if bool(mask.all()):
        raise ValueError("the mask has no hole (all pixels are white = known)")
    return mask
