"""``diffrepro compare editing | restoration [--methods ...] [--base ...] ...``."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffrepro.core.cli import (
    device_name,
    existing_file,
    finite_float,
    out_dir,
    positive_int,
    seed_int,
)


def add_compare_command(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="run installed methods side by side")
    kinds = compare.add_subparsers(dest="compare_command", required=True, metavar="KIND")
    editing = kinds.add_parser("editing", help="text-driven image editing methods")
    editing.add_argument("--methods", nargs="+", metavar="NAME", help="default: all installed")
    editing.add_argument(
        "--base", default="emoji-t2i", help="zoo entry or SD 1.x diffusers folder (emoji-t2i)"
    )
    editing.add_argument("--tasks", type=existing_file, help="JSON / TOML task file")
    editing.add_argument("--count", type=positive_int, help="default tasks to run (default 4)")
    editing.add_argument("--seeds", type=seed_int, nargs="+", help="default: 0 1")
    editing.add_argument("--steps", type=positive_int, help="DDIM steps (default 20)")
    editing.add_argument("--out", type=out_dir, default=Path("runs/compare/editing"))
    editing.add_argument("--device", type=device_name, default="cpu")
    editing.add_argument(
        "--quick", action="store_true", help="tiny random SD and judge: a seconds-long smoke run"
    )
    editing.set_defaults(func=_editing)
    _add_restoration(kinds)


def _add_restoration(kinds: argparse._SubParsersAction) -> None:
    from diffrepro.core.compare.restoration_tasks import MASKS

    restoration = kinds.add_parser("restoration", help="inpainting with pixel diffusion models")
    restoration.add_argument("--methods", nargs="+", metavar="NAME", help="default: all installed")
    restoration.add_argument(
        "--base", default="emoji-ddpm", help="zoo entry or ADM-layout folder (emoji-ddpm)"
    )
    restoration.add_argument("--count", type=positive_int, help="held-out emoji (default 3)")
    restoration.add_argument("--masks", nargs="+", choices=MASKS, help="default: all")
    restoration.add_argument(
        "--sigma", type=non_negative_float, default=0.05, help="measurement noise (0.05)"
    )
    restoration.add_argument("--seeds", type=seed_int, nargs="+", help="default: 0 1")
    restoration.add_argument("--steps", type=positive_int, help="sampler steps (default 50)")
    restoration.add_argument("--out", type=out_dir, default=Path("runs/compare/restoration"))
    restoration.add_argument("--device", type=device_name, default="cpu")
    restoration.add_argument(
        "--quick", action="store_true", help="tiny random DDPM and judge: a seconds-long smoke run"
    )
    restoration.set_defaults(func=_restoration)


def _restoration(args: argparse.Namespace) -> int:
    from diffrepro.core.compare.restoration import compare_restoration

    return compare_restoration(args)


def _editing(args: argparse.Namespace) -> int:
    from diffrepro.core.compare.editing import compare_editing

    return compare_editing(args)


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value
