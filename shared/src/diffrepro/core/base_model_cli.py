"""The base-model flags of commands that fine-tune or sample one Stable Diffusion model (Imagic,
SINE): ``--model`` (a zoo entry, ``sd-tiny``, a diffusers folder or a CompVis file; the common
``--checkpoint`` names the same thing) and ``--tokenizer`` (for a CompVis file).

- :func:`add_model_args`: the two flags; :func:`model_source`: which base model the flags name
  (``emoji-t2i`` by default, ``sd-tiny`` with ``--preset tiny``, or a saved run's model);
- :func:`open_model`: that model on ``--device`` in a config's dtype;
- :func:`check_prompt_length`: a prompt that does not fit the text encoder is a clear error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ZOO_MODEL = "emoji-t2i"
TINY_MODEL = "sd-tiny"


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help=f"base model: {ZOO_MODEL} (core zoo), {TINY_MODEL} (random, tests), a diffusers "
        "folder or a CompVis file (--checkpoint is the same)",
    )
    parser.add_argument("--tokenizer", type=Path, default=None, help="for a CompVis file")


def model_source(args: argparse.Namespace, fallback: str | None = None) -> str:
    """``--checkpoint`` or ``--model`` (not both), else ``fallback``, else the preset's model."""
    if args.checkpoint is not None and args.model is not None:
        raise ValueError("--model and --checkpoint both name the base model: give one")
    if args.checkpoint is not None:
        return str(args.checkpoint)
    if args.model is not None:
        return args.model
    if fallback is not None:
        return fallback
    return TINY_MODEL if args.preset == "tiny" else ZOO_MODEL


def open_model(source: str, args: argparse.Namespace, dtype: str):
    """The :class:`StableDiffusion` that ``source`` names, on ``--device``, in ``dtype``."""
    from diffrepro.core.models.sd_sources import open_stable_diffusion, parse_dtype
    from diffrepro.core.repro import resolve_device

    return open_stable_diffusion(
        source,
        tokenizer=args.tokenizer,
        dtype=parse_dtype(dtype),
        device=resolve_device(args.device),
    )


def check_prompt_length(sd, prompt: str, flag: str) -> None:
    """``flag`` names the prompt in the error when it has more tokens than the encoder takes."""
    n = len(sd.tokenizer.encode(prompt))
    if n > sd.tokenizer.max_length:
        raise ValueError(
            f"{flag} has {n} tokens, more than the text encoder's {sd.tokenizer.max_length}"
        )
