"""The ``adir`` command: train, index, restore, demo, cite."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from diffrepro.core.cli import RUNS_DIR, add_common_args, paper_parser, run
from diffrepro.core.config import apply_overrides, save_config, select_preset

from .paper import PAPER
from .tasks import TASKS


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)

    train = commands.add_parser("train", help="train a base pixel model on an image folder")
    add_common_args(train, preset="demo")
    train.add_argument("--data", type=Path, required=True, help="folder of training images")
    train.add_argument(
        "--no-resume", action="store_true", help="start over even if --out has checkpoints"
    )
    train.set_defaults(func=_train)

    index = commands.add_parser("index", help="embed a corpus folder once for K-NN retrieval")
    index.add_argument("--corpus", type=Path, required=True, help="folder of corpus images")
    index.add_argument("--out", type=Path, default=RUNS_DIR / "adir" / "index.npz")
    index.add_argument(
        "--clip",
        type=Path,
        default=None,
        help="local CLIP vision folder (default: offline thumbnail embedder)",
    )
    index.add_argument(
        "--image-size", type=int, default=224, help="images are centre-cropped to this size"
    )
    index.add_argument("--device", default="auto")
    index.set_defaults(func=_index)

    restore = commands.add_parser(
        "restore", help="restore one image (adapt on neighbours, guided sampling)"
    )
    add_common_args(restore, preset="paper")
    restore.add_argument(
        "--task", required=True, choices=TASKS, metavar="TASK", help=", ".join(TASKS)
    )
    source = restore.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input", type=Path, help="the measurement y (e.g. the low-resolution image)"
    )
    source.add_argument(
        "--clean", type=Path, help="a clean image to degrade (then PSNR/SSIM are reported)"
    )
    restore.add_argument(
        "--size", type=int, default=None, help="image size for --clean (default: the model's)"
    )
    restore.add_argument(
        "--mask", type=Path, default=None, help="inpainting mask image, white = observed"
    )
    restore.add_argument(
        "--kernel", type=Path, default=None, help="blur kernel .npy for deblur_kernel"
    )
    restore.add_argument(
        "--index", type=Path, default=None, help="retrieval index from `adir index`"
    )
    restore.add_argument(
        "--clip", type=Path, default=None, help="the CLIP folder the index was built with"
    )
    restore.set_defaults(func=_restore)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


def _config(args: argparse.Namespace):
    from .config import PRESETS

    return apply_overrides(select_preset(PRESETS, args.preset), args.overrides)


def _train(args: argparse.Namespace) -> None:
    from diffrepro.core.data import ImageFolder
    from diffrepro.core.repro import resolve_device, seed_everything

    from .train import train_base

    cfg = _config(args)
    seed_everything(args.seed)
    out = args.out or RUNS_DIR / "adir" / "train"
    data = ImageFolder(args.data, size=cfg.unet.image_size, crop="random")
    save_config(cfg, out / "config.json")
    weights = train_base(
        data,
        cfg,
        out,
        device=resolve_device(args.device),
        seed=args.seed,
        resume=not args.no_resume,
    )
    print(f"weights: {weights}")


def _index(args: argparse.Namespace) -> None:
    from diffrepro.core.repro import resolve_device

    from .embedders import make_embedder
    from .retrieval import build_index, list_images

    embedder = make_embedder(args.clip, str(resolve_device(args.device)))
    index = build_index(list_images(args.corpus), embedder, image_size=args.image_size)
    print(f"indexed {len(index)} images with {index.embedder}: {index.save(args.out)}")


def _restore(args: argparse.Namespace) -> None:
    from diffrepro.core.repro import resolve_device, seed_everything

    from .embedders import make_embedder
    from .evaluation import scores
    from .images import figure, save_image
    from .model import load_model
    from .restore import restore
    from .retrieval import RetrievalIndex

    if args.checkpoint is None:
        raise ValueError(
            "restore needs --checkpoint (an `adir train` run or 256x256_diffusion_uncond.pt)"
        )
    cfg = _config(args)
    device = resolve_device(args.device)
    generator = seed_everything(args.seed)
    model, cfg = load_model(args.checkpoint, cfg)
    model.to(device)
    op, y, clean, size = _measurement(args, cfg)
    index = embedder = None
    if cfg.adapt.enabled and args.index is not None:
        index, embedder = RetrievalIndex.load(args.index), make_embedder(args.clip, str(device))
    elif cfg.adapt.enabled:
        print("adir: no --index given, sampling without adaptation", file=sys.stderr)
    exclude = [p for p in (args.input, args.clean) if p is not None]
    result = restore(
        model,
        op,
        y.to(device),
        size,
        cfg,
        index=index,
        embedder=embedder,
        exclude=exclude,
        generator=generator,
        progress=True,
    )
    out = args.out or RUNS_DIR / "adir" / "restore"
    save_config(cfg, out / "config.json")
    save_image(result.restored[0], out / "restored.png")
    save_image(result.baseline[0], out / "baseline.png")
    row = [result.baseline[0], result.restored[0].cpu()] + ([clean[0]] if clean is not None else [])
    figure(
        [row],
        ["A+ y", "ADIR"] + (["clean"] if clean is not None else []),
        out / "figure.png",
        size=256,
    )
    metrics = scores(op, result.restored.cpu(), y.cpu(), clean)
    metrics["neighbours"] = list(result.neighbours)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(
        f"restored: {out / 'restored.png'}  "
        + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    )


def _measurement(args: argparse.Namespace, cfg):
    """(operator, y (1, ...), clean image or None, image size) from --clean or --input."""
    import numpy as np

    from .images import load_image
    from .tasks import make_operator, measure, sr_factor

    kernel = torch.from_numpy(np.load(args.kernel)) if args.kernel is not None else None
    mask = None
    if args.mask is not None:
        mask = (load_image(args.mask).mean(dim=0) > 0).float()
    if args.clean is not None:
        size = args.size or cfg.unet.image_size
        clean = load_image(args.clean, size)[None]
        op = make_operator(args.task, size, cfg.task, kernel=kernel, mask=mask)
        generator = torch.Generator().manual_seed(args.seed)
        return op, measure(op, clean, cfg.noise_sigma, generator), clean, size
    y = load_image(args.input)[None]
    if y.shape[-1] != y.shape[-2]:
        raise ValueError(f"the measurement must be square, got {y.shape[-2]}x{y.shape[-1]}")
    size = y.shape[-1] * sr_factor(args.task)
    if args.task.startswith("inpaint") and mask is None:
        raise ValueError("restoring a given inpainting measurement needs --mask (white = observed)")
    op = make_operator(args.task, size, cfg.task, kernel=kernel, mask=mask)
    if args.task == "colorize":
        y = y.mean(dim=1, keepdim=True)
    return op, op.forward(y) if args.task.startswith("inpaint") else y, None, size


if __name__ == "__main__":
    raise SystemExit(main())
