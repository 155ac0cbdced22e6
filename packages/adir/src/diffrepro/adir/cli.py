"""The ``adir`` command: train, index, restore, demo, cite."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from diffrepro.core.cli import (
    RUNS_DIR,
    add_common_args,
    device_name,
    existing_dir,
    existing_file,
    out_file,
    paper_parser,
    positive_int,
    run,
)
from diffrepro.core.config import apply_overrides, save_config, select_preset

from .paper import PAPER
from .tasks import TASKS


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)

    train = commands.add_parser("train", help="train a base pixel model on an image folder")
    add_common_args(train, preset="demo")
    train.add_argument("--data", type=Path, required=True, help="folder of training images")
    train.add_argument(
        "--no-resume",
        action="store_true",
        help="start a fresh run (refused when --out already holds an earlier run's checkpoints)",
    )
    train.set_defaults(func=_train)

    index = commands.add_parser("index", help="embed a corpus folder once for K-NN retrieval")
    index.add_argument("--corpus", type=existing_dir, required=True, help="folder of corpus images")
    index.add_argument("--out", type=out_file, default=RUNS_DIR / "adir" / "index.npz")
    index.add_argument(
        "--clip",
        type=Path,
        default=None,
        help="local CLIP vision folder (default: offline thumbnail embedder)",
    )
    index.add_argument(
        "--image-size",
        type=positive_int,
        default=224,
        help="images are centre-cropped to this size",
    )
    index.add_argument("--device", type=device_name, default="auto")
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
        "--size",
        type=positive_int,
        default=None,
        help="image size for --clean (default: the model's)",
    )
    restore.add_argument(
        "--mask", type=existing_file, default=None, help="inpainting mask image, white = observed"
    )
    restore.add_argument(
        "--kernel", type=existing_file, default=None, help="blur kernel .npy for deblur_kernel"
    )
    restore.add_argument(
        "--index", type=existing_file, default=None, help="retrieval index from `adir index`"
    )
    restore.add_argument(
        "--clip", type=existing_dir, default=None, help="the CLIP folder the index was built with"
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
    from diffrepro.core.train import check_run_dir

    from .train import train_base

    if args.checkpoint is not None:
        raise ValueError(
            f"--checkpoint {args.checkpoint}: adir train starts from scratch and resumes from its "
            "--out folder by itself; --checkpoint is for `adir restore`"
        )
    cfg = _config(args)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    out = args.out if args.out is not None else RUNS_DIR / "adir" / "train"
    check_run_dir(out, resume=not args.no_resume)  # before anything is written
    data = ImageFolder(args.data, size=cfg.unet.image_size, crop="random")
    save_config(cfg, out / "config.json")
    weights = train_base(
        data,
        cfg,
        out,
        device=device,
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
    if len(index) == 0:
        raise ValueError(f"--corpus {args.corpus} holds no images")
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
    _check_restore_flags(args, cfg)
    device = resolve_device(args.device)
    generator = seed_everything(args.seed)
    model, cfg = load_model(args.checkpoint, cfg)
    model.to(device)
    op, y, clean, size = _measurement(args, cfg)
    index = embedder = None
    if args.index is not None:
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
    out = args.out if args.out is not None else RUNS_DIR / "adir" / "restore"
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


def _check_restore_flags(args: argparse.Namespace, cfg) -> None:
    """Flags that would be silently ignored are errors."""
    if args.kernel is not None and args.task != "deblur_kernel":
        raise ValueError(f"--kernel only applies to --task deblur_kernel, not {args.task}")
    if args.task == "deblur_kernel" and args.kernel is None:
        raise ValueError("--task deblur_kernel needs --kernel (a 2-D blur kernel .npy)")
    if args.mask is not None and not args.task.startswith("inpaint"):
        raise ValueError(f"--mask only applies to the inpainting tasks, not {args.task}")
    if args.size is not None and args.clean is None:
        raise ValueError("--size only applies to --clean (the size of --input is its own)")
    if args.index is not None and not cfg.adapt.enabled:
        raise ValueError("--index was given but adaptation is off (adapt.enabled=false)")
    if args.clip is not None and args.index is None:
        raise ValueError("--clip only applies with --index (the embedder the index was built with)")


def _measurement(args: argparse.Namespace, cfg):
    """(operator, y (1, ...), clean image or None, image size) from --clean or --input."""
    from .images import load_image
    from .tasks import make_operator, measure, sr_factor

    kernel = load_kernel(args.kernel) if args.kernel is not None else None
    mask = load_mask(args.mask) if args.mask is not None else None
    if args.clean is not None:
        size = args.size if args.size is not None else cfg.unet.image_size
        _check_size(size, cfg, "--size")
        clean = load_image(args.clean, size)[None]
        _check_mask(mask, size, args.mask)
        op = make_operator(args.task, size, cfg.task, kernel=kernel, mask=mask)
        generator = torch.Generator().manual_seed(args.seed)
        return op, measure(op, clean, cfg.noise_sigma, generator), clean, size
    y = load_image(args.input)[None]
    if y.shape[-1] != y.shape[-2]:
        raise ValueError(
            f"--input {args.input}: the measurement must be square, got {y.shape[-2]}x{y.shape[-1]}"
        )
    size = y.shape[-1] * sr_factor(args.task)
    _check_size(size, cfg, f"--input {args.input}")
    if args.task.startswith("inpaint") and mask is None:
        raise ValueError("restoring a given inpainting measurement needs --mask (white = observed)")
    _check_mask(mask, size, args.mask)
    op = make_operator(args.task, size, cfg.task, kernel=kernel, mask=mask)
    if args.task == "colorize":
        y = y.mean(dim=1, keepdim=True)
    return op, op.forward(y) if args.task.startswith("inpaint") else y, None, size


def load_kernel(path: Path) -> torch.Tensor:
    """A blur kernel ``.npy``: a finite 2-D array of non-negative numbers with a positive sum
    (never unpickled)."""
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        reason = "it holds pickled objects, which are never loaded" if "pickle" in str(err) else err
        raise ValueError(f"--kernel {path} is not a plain .npy array ({reason})") from None
    except (OSError, EOFError) as err:
        raise ValueError(f"--kernel {path} is not a readable .npy file ({err})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu" or array.ndim != 2:
        shape = getattr(array, "shape", None)
        raise ValueError(f"--kernel {path} must be a 2-D array of numbers, got shape {shape}")
    if array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"--kernel {path} is empty or has non-finite (NaN/inf) values")
    if (array < 0).any() or array.sum() <= 0:
        raise ValueError(f"--kernel {path} must be non-negative with a positive sum")
    return torch.from_numpy(array.astype(np.float64))


def load_mask(path: Path) -> torch.Tensor:
    """An inpainting mask image as (H, W) with 1 = observed (white) and 0 = missing."""
    from .images import load_image

    return (load_image(path).mean(dim=0) > 0).float()


def _check_mask(mask: torch.Tensor | None, size: int, path: Path | None) -> None:
    if mask is not None and tuple(mask.shape) != (size, size):
        raise ValueError(
            f"--mask {path} is {mask.shape[1]}x{mask.shape[0]}, but the image is {size}x{size}"
        )
    if mask is not None and not bool(mask.any()):
        raise ValueError(f"--mask {path} observes no pixel (it is all black)")


def _check_size(size: int, cfg, what: str) -> None:
    """The UNet halves the image len(channel_mult) - 1 times: the size must allow it."""
    factor = 2 ** (len(cfg.unet.channel_mult) - 1)
    if size < factor or size % factor:
        raise ValueError(
            f"{what}: the restored image would be {size}x{size}; this model needs a multiple "
            f"of {factor} pixels"
        )


if __name__ == "__main__":
    raise SystemExit(main())
