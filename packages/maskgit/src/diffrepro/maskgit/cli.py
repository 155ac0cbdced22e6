"""The ``maskgit`` command: ``train-tokenizer``, ``train``, ``sample``, ``inpaint``, ``outpaint``,
``edit``, ``demo`` and ``cite``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from diffrepro.core.cli import add_common_args, paper_parser, run
from diffrepro.maskgit.paper import PAPER


def _decode_args(parser: argparse.ArgumentParser, steps_default: str = "preset") -> None:
    parser.add_argument(
        "--steps", type=int, default=None, help=f"decoding iterations T (default: {steps_default})"
    )
    parser.add_argument("--schedule", default=None, help="mask schedule (default: preset)")
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="Gumbel choice temperature τ0 (default: preset, official 4.5)",
    )
    parser.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance scale (default 0: off, as in MaskGIT)",
    )
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer weights")


def _with_class(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--class",
        dest="label",
        type=int,
        required=required,
        default=0,
        help="class label (0-based)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)
    tok = commands.add_parser("train-tokenizer", help="train the VQGAN tokenizer")
    tok.add_argument(
        "--data", type=Path, required=True, help="image folder (sub-folders = classes)"
    )
    add_common_args(tok)
    tok.set_defaults(func=_train_tokenizer)

    tr = commands.add_parser("train", help="train the transformer (masked token modelling)")
    tr.add_argument("--data", type=Path, required=True, help="image folder (sub-folders = classes)")
    tr.add_argument("--tokenizer", type=Path, required=True, help="trained tokenizer weights")
    add_common_args(tr)
    tr.set_defaults(func=_train)

    sample = commands.add_parser("sample", help="class-conditional generation")
    _with_class(sample, required=True)
    sample.add_argument("--num", type=int, default=4, help="images to generate (default 4)")
    _decode_args(sample)
    add_common_args(sample)
    sample.set_defaults(func=_sample)

    inpaint = commands.add_parser("inpaint", help="re-synthesise a box of an image")
    outpaint = commands.add_parser("outpaint", help="extend an image beyond one side")
    edit = commands.add_parser("edit", help="class-conditional editing of a box")
    for sub in (inpaint, outpaint, edit):
        sub.add_argument("--input", type=Path, required=True, help="image to edit")
        _with_class(sub, required=sub is edit)
        _decode_args(sub, "12 from step 2 for edit, else preset" if sub is edit else "preset")
        add_common_args(sub)
    for sub in (inpaint, edit):
        sub.add_argument("--box", required=True, help="pixel box top,left,height,width")
    outpaint.add_argument("--side", default="right", help="left, right, top or bottom")
    outpaint.add_argument(
        "--keep", type=int, default=None, help="token rows/columns kept (default: half the grid)"
    )
    inpaint.set_defaults(func=_inpaint)
    outpaint.set_defaults(func=_outpaint)
    edit.set_defaults(func=_edit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


# --- training ------------------------------------------------------------------------------


def _config(args: argparse.Namespace):
    from diffrepro.core.config import apply_overrides, select_preset
    from diffrepro.maskgit.config import PRESETS

    return apply_overrides(select_preset(PRESETS, args.preset), args.overrides)


def _train_tokenizer(args: argparse.Namespace) -> None:
    from diffrepro.core.repro import resolve_device
    from diffrepro.maskgit.data import folder_dataset
    from diffrepro.maskgit.train import train_tokenizer

    cfg = _config(args)
    device = resolve_device(args.device)
    images, _, _ = folder_dataset(args.data, cfg.image_size)
    out = args.out or Path("runs/maskgit/tokenizer")
    train_tokenizer(cfg, images, out, seed=args.seed, device=device)
    print(f"tokenizer: {out / 'tokenizer.safetensors'}")


def _train(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from diffrepro.core.repro import resolve_device
    from diffrepro.maskgit.data import folder_dataset
    from diffrepro.maskgit.loading import load_tokenizer
    from diffrepro.maskgit.train import train_transformer

    cfg = _config(args)
    device = resolve_device(args.device)
    tokenizer = load_tokenizer(args.tokenizer)
    cfg = replace(cfg, tokenizer=tokenizer.config)
    images, labels, classes = folder_dataset(args.data, cfg.image_size)
    cfg = cfg.with_classes(len(classes))
    out = args.out or Path("runs/maskgit/transformer")
    train_transformer(cfg, tokenizer, images, labels, out, seed=args.seed, device=device)
    print(f"transformer: {out / 'transformer.safetensors'} ({len(classes)} classes)")


# --- generation ----------------------------------------------------------------------------


def _models(args: argparse.Namespace, edit: bool = False):
    """(transformer, tokenizer, decode config, device, generator, image size)."""
    import torch

    from diffrepro.core.repro import resolve_device, seed_everything
    from diffrepro.maskgit.generation import EDIT_DECODE
    from diffrepro.maskgit.loading import load_tokenizer, load_transformer

    if args.checkpoint is None:
        raise ValueError("--checkpoint (the transformer weights) is required")
    cfg = _config(args)
    device = resolve_device(args.device)
    model = load_transformer(args.checkpoint).to(device)
    tokenizer = load_tokenizer(args.tokenizer).to(device)
    if tokenizer.config.codebook_size != model.config.codebook_size:
        raise ValueError(
            f"{args.tokenizer} has {tokenizer.config.codebook_size} codes but {args.checkpoint} "
            f"expects {model.config.codebook_size}"
        )
    dec = EDIT_DECODE if edit else cfg.decode
    knobs = {
        "num_iter": args.steps,
        "schedule": args.schedule,
        "choice_temperature": args.temperature,
        "guidance_scale": args.guidance,
    }
    from dataclasses import replace

    dec = replace(dec, **{k: v for k, v in knobs.items() if v is not None})
    if edit and args.steps is not None and dec.start_iter >= dec.num_iter:
        dec = replace(dec, start_iter=0)
    seed_everything(args.seed)
    size = tokenizer.config.downsample * model.config.latent_size
    return (
        model.eval(),
        tokenizer.eval(),
        dec,
        device,
        torch.Generator(device).manual_seed(args.seed),
        size,
    )


def _save(images, out: Path, name: str) -> Path:
    from diffrepro.core.data import save_grid

    path = save_grid(images * 2 - 1, out / name)
    return path


def _sample(args: argparse.Namespace) -> None:
    import torch

    from diffrepro.maskgit.generation import sample

    if args.num < 1:
        raise ValueError(f"--num must be at least 1, got {args.num}")
    model, tokenizer, dec, device, gen, _ = _models(args)
    labels = torch.full((args.num,), args.label, dtype=torch.long, device=device)
    out = sample(model, tokenizer, labels, dec, gen)
    path = _save(out.images, args.out or Path("runs/maskgit/sample"), f"class_{args.label}.png")
    print(f"wrote {path} ({dec.num_iter - dec.start_iter} transformer passes)")


def _image(args: argparse.Namespace, size: int, device):
    from diffrepro.core.data import load_image

    image = load_image(args.input)
    if tuple(image.shape[1:]) != (size, size):
        raise ValueError(
            f"{args.input} is {image.shape[2]}×{image.shape[1]}; the model takes {size}×{size}"
        )
    return ((image + 1) / 2)[None].to(device)


def _box(text: str) -> tuple[int, int, int, int]:
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise ValueError(f"--box expects top,left,height,width integers, got {text!r}")
    return box  # type: ignore[return-value]


def _region(args, model, tokenizer, size):
    from diffrepro.maskgit.generation import box_mask, outpaint_mask

    latent = model.config.latent_size
    if args.command == "outpaint":
        keep = latent // 2 if args.keep is None else args.keep
        return outpaint_mask(latent, args.side, keep)
    box = _box(args.box)
    if box[0] + box[2] > size or box[1] + box[3] > size:
        raise ValueError(f"--box {args.box} does not fit the {size}×{size} image")
    return box_mask(latent, tokenizer.config.downsample, box)


def _fill(args: argparse.Namespace, edit: bool) -> None:
    import torch

    from diffrepro.maskgit.generation import edit as edit_fn
    from diffrepro.maskgit.generation import inpaint

    model, tokenizer, dec, device, gen, size = _models(args, edit=edit)
    region = _region(args, model, tokenizer, size).to(device)[None]
    image = _image(args, size, device)
    labels = torch.tensor([args.label], device=device)
    fn = edit_fn if edit else inpaint
    out = fn(model, tokenizer, image, region, labels, dec, gen)
    folder = args.out or Path(f"runs/maskgit/{args.command}")
    path = _save(out.images, folder, f"{args.command}.png")
    _save(torch.cat([image, out.images]), folder, "comparison.png")
    print(f"wrote {path} and {folder / 'comparison.png'}")


def _inpaint(args: argparse.Namespace) -> None:
    _fill(args, edit=False)


def _outpaint(args: argparse.Namespace) -> None:
    _fill(args, edit=False)


def _edit(args: argparse.Namespace) -> None:
    _fill(args, edit=True)
