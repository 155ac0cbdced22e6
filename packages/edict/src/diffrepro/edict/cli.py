"""The ``edict`` command: invert, reconstruct, edit, demo, cite.

::

    edict edit --image cat.png --prompt "a cat face" --target "a dog face" --checkpoint SD_FOLDER
    edict reconstruct --image cat.png --prompt "a cat face" --checkpoint SD_FOLDER
    edict invert --image cat.png --prompt "a cat face" --out runs/edict/cat   # inversion file
    edict edit --inversion runs/edict/cat/inversion.safetensors --target "a dog face"

Defaults are the ``paper`` preset (S = 50, s = 0.8, G = 3, p = 0.93, float64); ``--steps``,
``--strength``, ``--guidance``, ``--p``, ``--dtype`` and ``--method`` set single fields, ``--set
key=value`` any field. Bad input exits with code 2 and one line; outputs are written only after
the work succeeded, each file atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import torch

from diffrepro.core.cli import RUNS_DIR, add_common_args, paper_parser, run
from diffrepro.core.config import apply_overrides, config_from_dict, config_to_dict, select_preset

from .config import DTYPES, METHODS, PRESETS, EDICTConfig, with_values
from .paper import PAPER

INVERSION_KIND = "edict-inversion"
GRID_FIELDS = ("steps", "strength", "p", "leapfrog", "order_key", "method", "dtype", "steps_offset")


def build_parser() -> argparse.ArgumentParser:
    parser, commands = paper_parser(PAPER)
    verbs = {
        "invert": "invert an image to its coupled noise latents (an inversion file)",
        "reconstruct": "invert and re-denoise with the same prompt; report the error",
        "edit": "invert with --prompt, denoise with --target",
    }
    for verb, text in verbs.items():
        sub = commands.add_parser(verb, help=text)
        add_common_args(sub, preset="paper")
        _add_inputs(sub, verb)
        _add_knobs(sub)
        sub.set_defaults(func=_COMMANDS[verb])
    return parser


def _add_inputs(sub: argparse.ArgumentParser, verb: str) -> None:
    sub.add_argument("--image", type=Path, help="the real image to invert")
    sub.add_argument("--prompt", help="the prompt describing the image (inversion)")
    if verb != "invert":
        sub.add_argument(
            "--inversion", type=Path, help="an `edict invert` file instead of --image/--prompt"
        )
    if verb == "edit":
        sub.add_argument("--target", required=True, help="the edit prompt (denoising)")
    sub.add_argument(
        "--tokenizer", type=Path, default=None, help="tokenizer folder for CompVis single files"
    )


def _add_knobs(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--steps", type=int, default=None, help="DDIM steps S (paper 50)")
    sub.add_argument("--strength", type=float, default=None, help="editing strength s (0.8)")
    sub.add_argument("--guidance", type=float, default=None, help="guidance scale G (3)")
    sub.add_argument("--p", type=float, default=None, help="mixing weight p (0.93)")
    sub.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="precision (float64)")
    sub.add_argument("--method", choices=METHODS, default=None, help="edict or the ddim baseline")


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


# ----------------------------------------------------------------------------- commands


def _invert(args: argparse.Namespace) -> None:
    from diffrepro.core.checkpoints import save_checkpoint

    from . import pipeline

    job = _prepare(args)
    x, y = pipeline.invert(job.sd, job.z0, job.prompt, job.cfg, progress=_tty())
    _check_finite({"x": x, "y": y})
    out = _out(args, "invert")
    meta = {
        "kind": INVERSION_KIND,
        "config": config_to_dict(job.cfg),
        "prompt": job.prompt,
        "checkpoint": _model_reference(args.checkpoint),
        "seed": args.seed,
    }
    path = save_checkpoint(out / "inversion.safetensors", {"x": x, "y": y, "z0": job.z0}, meta)
    _write_config(out, job.cfg)
    print(f"inversion: {path} ({job.cfg.active_steps} steps, method {job.cfg.method})")


def _reconstruct(args: argparse.Namespace) -> None:
    job = _prepare(args)
    _denoise_and_save(args, job, job.prompt, "reconstruct", "reconstruction.png")


def _edit(args: argparse.Namespace) -> None:
    job = _prepare(args)
    _denoise_and_save(args, job, args.target, "edit", "edited.png")


_COMMANDS = {"invert": _invert, "reconstruct": _reconstruct, "edit": _edit}


# ----------------------------------------------------------------------------- shared steps


@dataclasses.dataclass
class _Job:
    cfg: EDICTConfig
    sd: object
    prompt: str
    z0: torch.Tensor
    image: torch.Tensor | None = None  # the prepared input image (None from an inversion file)
    noisy: tuple[torch.Tensor, torch.Tensor] | None = None  # (x, y) read from an inversion file


def _prepare(args: argparse.Namespace) -> _Job:
    """Validate every input, load the model and encode (or read) the latents; writes nothing."""
    from diffrepro.core.repro import resolve_device

    from . import pipeline
    from .images import load_square, model_resolution
    from .loading import load_model

    inversion = getattr(args, "inversion", None)
    if inversion is not None and (args.image is not None or args.prompt is not None):
        raise ValueError("give either --inversion or --image with --prompt, not both")
    stored = _read_inversion(inversion) if inversion is not None else None
    cfg = _config(args, stored)
    if stored is None and (args.image is None or not args.prompt):
        raise ValueError("--image and a non-empty --prompt are required (or --inversion FILE)")
    device = resolve_device(args.device)
    checkpoint = args.checkpoint
    if checkpoint is None and stored is not None:
        checkpoint = stored[1]["checkpoint"]
    sd = load_model(checkpoint, dtype=cfg.torch_dtype, device=device, tokenizer=args.tokenizer)
    if stored is not None:
        tensors, meta = stored
        cast = {k: v.to(device, cfg.torch_dtype) for k, v in tensors.items()}
        return _Job(cfg, sd, meta["prompt"], cast["z0"], noisy=(cast["x"], cast["y"]))
    image = load_square(args.image, cfg.resolution or model_resolution(sd))
    generator = torch.Generator(device=sd.device).manual_seed(args.seed)
    z0 = pipeline.encode(sd, image.to(device, cfg.torch_dtype), cfg, generator)
    return _Job(cfg, sd, args.prompt, z0, image=image)


def _config(args: argparse.Namespace, stored) -> EDICTConfig:
    knobs = {k: getattr(args, k) for k in ("steps", "strength", "guidance", "p", "dtype")}
    knobs["method"] = args.method
    if stored is None:
        cfg = with_values(select_preset(PRESETS, args.preset), **knobs)
        return apply_overrides(cfg, args.overrides)
    base = config_from_dict(EDICTConfig, stored[1]["config"])
    cfg = apply_overrides(with_values(base, **knobs), args.overrides)
    changed = [f for f in GRID_FIELDS if getattr(cfg, f) != getattr(base, f)]
    if changed:
        raise ValueError(
            f"{', '.join(changed)} must match the inversion file "
            f"({', '.join(f'{f}={getattr(base, f)!r}' for f in changed)})"
        )
    return cfg


def _read_inversion(path: Path):
    from diffrepro.core.checkpoints import load_checkpoint

    if not path.is_file():
        raise FileNotFoundError(f"inversion file not found: {path}")
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != INVERSION_KIND or not {"x", "y", "z0"} <= set(tensors):
        raise ValueError(f"{path} is not an `edict invert` file")
    return tensors, meta


def _denoise_and_save(args, job: _Job, prompt: str, verb: str, filename: str) -> None:
    from diffrepro.core.data import save_image

    from . import pipeline

    progress = _tty()
    if job.noisy is None:
        job.noisy = pipeline.invert(job.sd, job.z0, job.prompt, job.cfg, progress=progress)
    x, y = pipeline.denoise(job.sd, *job.noisy, prompt, job.cfg, progress=progress)
    decoded = pipeline.decode(job.sd, pipeline.select_output(x, y, job.cfg)).cpu()
    floor = pipeline.decode(job.sd, job.z0).cpu()
    metrics = {
        "source_prompt": job.prompt,
        "target_prompt": prompt,
        "method": job.cfg.method,
        "active_steps": job.cfg.active_steps,
        "latent_relative_error": pipeline.relative_error(x, job.z0),
        "xy_relative_gap": pipeline.relative_error(y, x),
        "pixel_mse_to_vae_decode": float(torch.mean((decoded.double() - floor.double()) ** 2)),
    }
    if job.image is not None:
        reference = job.image.double()
        metrics["pixel_mse_to_input"] = float(torch.mean((decoded.double() - reference) ** 2))
        metrics["vae_floor_mse"] = float(torch.mean((floor.double() - reference) ** 2))
    _check_finite(metrics)
    out = _out(args, verb)
    save_image(decoded[0].float(), out / filename)
    if job.image is not None:
        save_image(job.image[0], out / "input.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _write_config(out, job.cfg)
    shown = ", ".join(f"{k} {v:.3g}" for k, v in metrics.items() if isinstance(v, float))
    print(f"{verb}: {out / filename}  {shown}")


def _model_reference(checkpoint: Path | None) -> str:
    """How the inversion file names its model: an absolute path, or a name (zoo, tiny-random)."""
    path = Path(str(checkpoint))
    return str(path.resolve()) if path.exists() else str(checkpoint)


def _check_finite(values: dict) -> None:
    for name, value in values.items():
        if isinstance(value, torch.Tensor) and not bool(torch.isfinite(value).all()):
            raise ValueError(f"the result is not finite ({name}); try --dtype float64")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metric {name} is not finite; try --dtype float64")


def _out(args: argparse.Namespace, verb: str) -> Path:
    out = args.out if args.out is not None else RUNS_DIR / "edict" / verb
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_config(out: Path, cfg: EDICTConfig) -> None:
    from diffrepro.core.checkpoints import atomic_write

    text = json.dumps(config_to_dict(cfg), indent=2, sort_keys=True) + "\n"
    atomic_write(out / "config.json", lambda tmp: tmp.write_text(text))


def _tty() -> bool:
    return sys.stderr.isatty()


if __name__ == "__main__":
    raise SystemExit(main())
