"""The ``limited-data-ft`` command: train, sample, demo, cite.

limited-data-ft train --base emoji-ddpm --data DIR --variant a3ft --out runs/x
limited-data-ft sample --checkpoint runs/x/finetuned.safetensors --num 16
limited-data-ft sample --base emoji-ddpm --num 16          (the pretrained model)
limited-data-ft demo [--quick]
limited-data-ft cite
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffrepro.core.cli import (
    RUNS_DIR,
    add_common_args,
    nonnegative_int,
    paper_parser,
    positive_int,
    reject_together,
    run,
)
from diffrepro.core.config import apply_overrides, config_to_dict, save_config, select_preset

from .paper import PAPER

BASE_HELP = (
    "base model: emoji-ddpm | emoji-ddpm-cond (core zoo), an ADM folder (model_flags.json), "
    "a diffusers UNet2DModel or DDPM pipeline folder, an ADM weights file (with --model-flags), "
    "or tiny-adm | tiny-adm-cond | tiny-unet2d (random, for tests)"
)


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)

    train = commands.add_parser("train", help="fine-tune a pretrained DDPM on a few images")
    add_common_args(train, preset="paper")
    train.set_defaults(func=_train)
    train.add_argument("--base", default=None, help=BASE_HELP)
    train.add_argument("--model-flags", default=None, help="ADM flags JSON or core preset name")
    train.add_argument("--data", type=Path, required=True, help="folder of target images")
    train.add_argument("--variant", default=None, help="full | attn | a3ft | adapter")
    train.add_argument("--label", type=nonnegative_int, default=None, help="class (cond. base)")

    sample = commands.add_parser("sample", help="sample a fine-tuned (or the base) model")
    add_common_args(sample, preset="paper")
    sample.set_defaults(func=_sample)
    sample.add_argument("--base", default=None, help=BASE_HELP + " (without --checkpoint)")
    sample.add_argument("--model-flags", default=None, help="ADM flags JSON or core preset name")
    sample.add_argument("--num", type=positive_int, default=None, help="number of images")
    sample.add_argument("--steps", type=positive_int, default=None, help="DDIM steps")
    sample.add_argument("--label", type=nonnegative_int, default=None, help="class (cond. base)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


def _config(args: argparse.Namespace):
    from .config import PRESETS

    cfg = apply_overrides(select_preset(PRESETS, args.preset), args.overrides)
    if getattr(args, "variant", None) is not None:
        import dataclasses

        cfg = dataclasses.replace(cfg, variant=args.variant)
    return cfg


def _base_spec(args: argparse.Namespace) -> str:
    reject_together(args, "--base", "--checkpoint", "--checkpoint is the base weights file")
    if args.checkpoint is not None:
        return str(args.checkpoint)
    if args.base is None:
        raise ValueError("--base is required (a zoo name, a folder or a weights file)")
    return args.base


def _labels(base, label: int | None, n: int):
    import torch

    if base.num_classes is None:
        if label is not None:
            raise ValueError("--label was given but the base model is unconditional")
        return None
    if label is None:
        raise ValueError(
            f"the base model is class-conditional: give --label 0..{base.num_classes - 1}"
        )
    if label >= base.num_classes:
        raise ValueError(f"--label {label} is not a class of the base (0..{base.num_classes - 1})")
    return torch.full((n,), label, dtype=torch.long)


def _train(args: argparse.Namespace) -> None:
    from diffrepro.core.repro import resolve_device, seed_everything, single_threaded_on_cpu

    from .base import open_base
    from .checkpoint import FILE_NAME, save_finetuned
    from .data import load_folder
    from .model import FineTuneModel, parameter_report
    from .training import finetune

    cfg = _config(args)
    spec = _base_spec(args)
    device = resolve_device(args.device)
    if not args.data.is_dir():
        raise FileNotFoundError(f"--data {args.data}: no such folder")
    out = args.out or RUNS_DIR / "limited_data_ft" / "train"
    base = open_base(spec, model_flags=args.model_flags, device=str(device))
    images = load_folder(args.data, base.image_size, base.in_channels)
    labels = _labels(base, args.label, len(images))
    run_info = {
        "base": base.ref,
        "data": str(args.data.resolve()),
        "label": args.label,
        "config": {k: v for k, v in config_to_dict(cfg).items() if k != "steps"},
    }
    _check_resume(out, run_info)
    seed_everything(args.seed)
    model = FineTuneModel(base.unet, cfg)
    report = parameter_report(model)
    print(_budget_line(report))
    save_config(cfg, out / "config.json")
    _write_json(out / "run.json", run_info)
    _write_json(out / "parameters.json", report)
    with single_threaded_on_cpu(device):
        result = finetune(model, images, base.schedule, cfg, out, labels=labels, seed=args.seed,
                          device=device)  # fmt: skip
    path = save_finetuned(out / FILE_NAME, model, base.ref)
    print(
        f"fine-tuned {cfg.variant} on {len(images)} images for {result.steps} steps "
        f"(final loss {result.losses[-1]:.4f}): {path}"
    )


def _budget_line(report: dict) -> str:
    line = (
        f"variant {report['variant']}: {report['trainable_parameters']:,} trainable of "
        f"{report['base_parameters'] + report['adapter_parameters']:,} parameters "
        f"({100 * report['trainable_fraction']:.2f} %)"
    )
    if report["adapter_blocks"]:
        line += (
            f"; adapters r={report['adapter_rank']} on {report['adapter_blocks']} attention "
            f"blocks = {100 * report['adapter_fraction']:.2f} % of the base UNet"
        )
    return line


def _check_resume(out: Path, run_info: dict) -> None:
    """A folder holding a run is resumed only with the same base, data and settings."""
    saved = out / "run.json"
    if not saved.is_file():
        return
    try:
        before = json.loads(saved.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{saved} is not valid JSON: {err}") from None
    if before != json.loads(json.dumps(run_info)):
        changed = sorted(
            k for k in run_info if before.get(k) != json.loads(json.dumps(run_info[k]))
        )
        raise ValueError(
            f"{out} holds a run with other settings ({', '.join(changed) or 'format'}); "
            "choose a new --out to start another"
        )


def _write_json(path: Path, data: dict) -> None:
    from diffrepro.core.checkpoints import atomic_write

    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda p: p.write_text(text))


def _sample(args: argparse.Namespace) -> None:
    from diffrepro.core.data import save_grid, save_image
    from diffrepro.core.repro import resolve_device, single_threaded_on_cpu

    from .base import open_base
    from .checkpoint import load_finetuned
    from .sampling import sample_images

    cfg = _config(args)
    device = resolve_device(args.device)
    reject_together(args, "--base", "--checkpoint", "--checkpoint names its own base")
    if args.checkpoint is not None:
        model, base = load_finetuned(args.checkpoint, device=str(device))
        cfg = model.ft_config if not args.overrides and not _preset_given(args) else cfg
    elif args.base is not None:
        base = open_base(args.base, model_flags=args.model_flags, device=str(device))
        model = base.unet
    else:
        raise ValueError("give --checkpoint (a fine-tuned file) or --base (a pretrained model)")
    num = args.num if args.num is not None else cfg.num_samples
    steps = args.steps if args.steps is not None else cfg.sample_steps
    if steps > len(base.schedule):
        raise ValueError(f"--steps {steps} exceeds the model's {len(base.schedule)} timesteps")
    labels = _labels(base, args.label, num)
    with single_threaded_on_cpu(device):
        images = sample_images(model, base.schedule, num, image_size=base.image_size,
                               channels=base.in_channels, labels=labels, num_steps=steps,
                               seed=args.seed)  # fmt: skip
    out = args.out or RUNS_DIR / "limited_data_ft" / "sample"
    for k, image in enumerate(images):
        save_image(image, out / f"sample_{k:03d}.png")
    grid = save_grid(images, out / "samples.png")
    print(f"{num} samples ({steps} DDIM steps, seed {args.seed}): {grid}")


def _preset_given(args: argparse.Namespace) -> bool:
    from diffrepro.core.cli import preset_given

    return preset_given(args)


if __name__ == "__main__":
    raise SystemExit(main())
