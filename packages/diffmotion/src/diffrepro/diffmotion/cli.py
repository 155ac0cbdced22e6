"""The ``diffmotion`` command: train, sample, demo, cite."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from diffrepro.core.cli import (
    add_common_args,
    device_name,
    out_file,
    paper_parser,
    positive_int,
    run,
    seed_int,
)

from .paper import PAPER
from .speech import SOURCES

TRAIN_DIR = Path("runs/diffmotion/train")


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)
    train = commands.add_parser("train", help="train on BVH + WAV pairs or the synthetic set")
    add_common_args(train)
    set_help(train, "overrides", "override one config field (repeatable, e.g. --set steps=2000)")
    set_help(train, "checkpoint", argparse.SUPPRESS)  # rejected: train resumes from --out
    train.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder of paired BVH + WAV files (default: the synthetic set)",
    )
    train.add_argument(
        "--utterances",
        type=positive_int,
        default=40,
        help="synthetic utterances to make when --data is not given (default 40)",
    )
    train.add_argument(
        "--speech",
        choices=SOURCES,
        default="prosody",
        help="synthetic speech when --data is not given: the fixed-seed prosody generator "
        "(default, bit-reproducible) or espeak-ng (the [demo] extra; each utterance is "
        "synthesised once and cached)",
    )
    train.set_defaults(func=_train)
    sample = commands.add_parser("sample", help="generate a gesture BVH for a speech WAV")
    sample.add_argument("--audio", type=Path, required=True, help="speech WAV file")
    sample.add_argument("--out", type=out_file, required=True, help="BVH file to write")
    sample.add_argument(
        "--checkpoint", type=Path, default=TRAIN_DIR,
        help=f"a train run folder (its latest checkpoint; default {TRAIN_DIR}) or a "
        "model.safetensors",
    )  # fmt: skip
    sample.add_argument(
        "--skeleton",
        type=Path,
        default=None,
        help="BVH whose skeleton to write (default: the built-in skeleton)",
    )
    sample.add_argument(
        "--samples-per-frame",
        type=positive_int,
        default=None,
        help="K samples per frame (official: 200 with --reduce median)",
    )
    sample.add_argument("--reduce", choices=("none", "median", "mean"), default=None)
    sample.add_argument(
        "--steps", type=positive_int, default=None, help="diffusion steps (default all)"
    )
    sample.add_argument("--alignment", choices=("training", "official"), default=None)
    sample.add_argument("--device", type=device_name, default="auto")
    sample.add_argument("--seed", type=seed_int, default=0)
    sample.set_defaults(func=_sample)
    return parser


def set_help(parser: argparse.ArgumentParser, dest: str, text: str) -> None:
    """Replace the help text of the option stored in ``dest`` (core's common flags)."""
    for action in parser._actions:
        if action.dest == dest:
            action.help = text


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


def _train(args: argparse.Namespace) -> None:
    from diffrepro.core.config import apply_overrides, select_preset
    from diffrepro.core.repro import resolve_device, single_threaded_on_cpu

    from .config import PRESETS
    from .data import folder_utterances, synthetic_utterances, training_clips
    from .train import train_model

    if args.checkpoint is not None:
        raise ValueError(
            f"--checkpoint {args.checkpoint}: train does not load weights; it resumes from its "
            "--out folder (use --checkpoint with `diffmotion sample`)"
        )
    cfg = apply_overrides(select_preset(PRESETS, args.preset), args.overrides)
    device = resolve_device(args.device)
    with single_threaded_on_cpu("cpu"):  # feature extraction: small torch operations
        if args.data is not None:
            utterances = folder_utterances(args.data, cfg.joints, cfg.fps)
        else:
            utterances = synthetic_utterances(
                args.utterances, args.seed, cfg.joints, speech_source=args.speech, fps=cfg.fps
            )
    poses, speech = training_clips(
        utterances, cfg.clip_frames, cfg.clip_hop, cfg.joints, mirror=cfg.mirror
    )
    out = args.out if args.out is not None else TRAIN_DIR
    _, result = train_model(cfg, poses, speech, out, seed=args.seed, device=device)
    loss = f"final loss {result.losses[-1]:.4f}; " if result.losses else ""
    print(f"{loss}step {result.step}; checkpoint: {result.checkpoint}")


def _sample(args: argparse.Namespace) -> None:
    from diffrepro.core.repro import resolve_device

    from .audio import read_wav
    from .bvh import read_bvh
    from .pipeline import gestures_for_audio
    from .skeleton import upper_body_skeleton
    from .train import load_model

    read_wav(args.audio)  # a bad WAV or skeleton fails before the model is loaded
    skeleton = read_bvh(args.skeleton).skeleton if args.skeleton else upper_body_skeleton()
    model, cfg = load_model(args.checkpoint, resolve_device(args.device))
    choices = {
        "samples_per_frame": args.samples_per_frame, "reduce": args.reduce,
        "steps": args.steps, "alignment": args.alignment,
    }  # fmt: skip
    sampling = dataclasses.replace(
        cfg.sampling, **{k: v for k, v in choices.items() if v is not None}
    )
    if args.reduce == "median" and args.samples_per_frame is None:
        sampling = dataclasses.replace(sampling, samples_per_frame=200)  # the official setting
    if args.reduce is None and sampling.samples_per_frame > 1:
        sampling = dataclasses.replace(sampling, reduce="median")
    if sampling.steps is not None and sampling.steps > cfg.model.diffusion_steps:
        raise ValueError(
            f"--steps {sampling.steps} exceeds the model's "
            f"{cfg.model.diffusion_steps} diffusion steps"
        )
    path = gestures_for_audio(model, cfg, args.audio, args.out, skeleton, sampling, seed=args.seed)
    print(f"wrote {path}")
