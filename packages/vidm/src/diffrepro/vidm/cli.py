"""The ``vidm`` command: train (content | motion), sample, demo, cite.

vidm train --stage content --preset demo --out runs/vidm/train
vidm train --stage motion  --preset demo --out runs/vidm/train
vidm sample --checkpoint runs/vidm/train --frames 16 --out runs/vidm/samples
vidm sample --checkpoint runs/vidm/train --first frame.png --frames 16
vidm demo [--quick]
vidm cite
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch

from diffrepro.core.cli import (
    add_common_args,
    existing_file,
    paper_parser,
    positive_int,
    preset_given,
    reject_together,
    run,
)
from diffrepro.vidm.paper import PAPER

DEFAULT_RUN = Path("runs/vidm/train")
SET_HELP = (
    "override one config field (repeatable, e.g. --set train.steps=100 --set motion.num_frames=16)"
)


def _set_help(parser: argparse.ArgumentParser, dest: str, text: str) -> None:
    """Replace the help text of the option stored in ``dest`` (core's common flags)."""
    for action in parser._actions:
        if action.dest == dest:
            action.help = text


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)
    train = commands.add_parser("train", help="train the content or the motion generator")
    add_common_args(train)
    _set_help(train, "overrides", SET_HELP)
    _set_help(train, "checkpoint", argparse.SUPPRESS)  # rejected: train resumes from --out
    train.add_argument("--stage", required=True, choices=("content", "motion"))
    train.set_defaults(func=_train)
    sample = commands.add_parser("sample", help="generate videos frame by frame")
    add_common_args(sample)
    _set_help(
        sample,
        "overrides",
        "override a config field of the trained run (repeatable, "
        "e.g. --set diffusion.respacing=25 --set generation.fps=4)",
    )
    _set_help(sample, "checkpoint", f"the `vidm train` --out folder (default {DEFAULT_RUN})")
    _set_help(sample, "preset", argparse.SUPPRESS)  # rejected: the config comes with the run
    sample.add_argument(
        "--frames", type=positive_int, default=None, help="frames per video (default: the config's)"
    )
    sample.add_argument(
        "--num", type=positive_int, default=None, help="videos to generate from scratch"
    )
    sample.add_argument(
        "--first",
        type=existing_file,
        nargs="+",
        default=None,
        help="first-frame image(s): one video each",
    )
    sample.set_defaults(func=_sample)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


def _config(args: argparse.Namespace, base=None):
    from diffrepro.core.config import apply_overrides
    from diffrepro.vidm.config import preset

    cfg = apply_overrides(base if base is not None else preset(args.preset), args.overrides)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=args.seed))


def _train(args: argparse.Namespace) -> None:
    from diffrepro.core.config import save_config
    from diffrepro.core.repro import resolve_device, seed_everything
    from diffrepro.core.train import check_run_dir
    from diffrepro.vidm.training import make_dataset, train_stage, training_flow_source

    if args.checkpoint is not None:
        raise ValueError(
            f"--checkpoint {args.checkpoint}: train does not load weights; it resumes from its "
            "--out folder by itself (--checkpoint is for `vidm sample`)"
        )
    cfg = _config(args)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    out = args.out if args.out is not None else DEFAULT_RUN
    check_run_dir(out / args.stage, resume=True)  # a broken earlier run fails before writing
    if args.stage == "motion":
        training_flow_source(cfg)
    dataset = make_dataset(cfg)
    save_config(cfg, out / f"{args.stage}_config.json")
    _, result = train_stage(
        cfg,
        args.stage,
        out,
        device=device,
        dataset=dataset,
    )
    last = f"{result.losses[-1]:.4f}" if result.losses else "none (already trained)"
    print(f"{args.stage}: step {result.step}, last loss {last}, checkpoint {result.checkpoint}")


def _sample(args: argparse.Namespace) -> None:
    from diffrepro.core.repro import resolve_device, seed_everything
    from diffrepro.vidm.generate import generate_first_frames, generate_videos
    from diffrepro.vidm.training import generation_flow_source, load_generator
    from diffrepro.vidm.video_io import save_frame_grid, save_gif

    if preset_given(args):
        raise ValueError(
            "--preset does not apply to `vidm sample`: the config comes with the trained "
            "--checkpoint run (change sampling settings with --set)"
        )
    reject_together(args, "--first", "--num", "--first makes one video per image")
    device = resolve_device(args.device)
    seed_everything(args.seed)
    run_dir = args.checkpoint if args.checkpoint is not None else DEFAULT_RUN
    motion, trained = load_generator(run_dir, "motion", device)
    cfg = _config(args, base=trained)
    flow_source = generation_flow_source(cfg)
    frames = args.frames if args.frames is not None else cfg.generation.frames
    num = args.num if args.num is not None else cfg.generation.num_videos
    if frames < 1 or num < 1:
        raise ValueError(
            f"generation.frames and generation.num_videos must be >= 1 ({frames}, {num})"
        )
    if args.first:
        first = _load_first_frames(args.first, cfg.data.image_size).to(device)
        seeds = [args.seed * 10_000 + k for k in range(len(first))]
    else:
        content, _ = load_generator(run_dir, "content", device)
        seeds = [args.seed * 10_000 + k for k in range(num)]
        first = generate_first_frames(
            content, seeds, cfg.diffusion, truncation=cfg.generation.truncation
        )
    videos = generate_videos(
        motion,
        first,
        frames,
        seeds,
        cfg.diffusion,
        flow_source,
        official_indexing=cfg.generation.official_indexing,
    )
    out = args.out if args.out is not None else Path("runs/vidm/samples")
    gif = save_gif(videos, out / "videos.gif", fps=cfg.generation.fps)
    grid = save_frame_grid(videos, out / "frames.png")
    print(f"{len(seeds)} videos of {frames} frames: {gif}, {grid}")


def _load_first_frames(paths: Sequence[Path], size: int) -> torch.Tensor:
    from diffrepro.core.data import center_crop, load_image, resize_shorter

    return torch.stack([center_crop(resize_shorter(load_image(p), size), size) for p in paths])
