"""``diffrepro compare editing``: load the base and judge, gather methods and tasks, run, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from diffrepro.core.compare.contract import EDITING_GROUP, discover, is_registered, select
from diffrepro.core.compare.report import write_report
from diffrepro.core.compare.runner import Base, run_all
from diffrepro.core.compare.tasks import default_tasks, read_tasks

OUT = Path("runs/compare/editing")
JUDGE = "emoji-judge"
DEFAULT_BASE = "emoji-t2i"
# The collection's editing papers; the ones without an installed entry point are named as skipped.
PAPERS = {
    "edict": "diffrepro-edict",
    "direct_inversion": "diffrepro-direct-inversion",
    "pix2pix_zero": "diffrepro-pix2pix-zero",
    "imagic": "diffrepro-imagic",
    "sine": "diffrepro-sine",
}
QUICK = {"count": 2, "seeds": [0], "steps": 4}


def load_base(name: str, device: torch.device, quick: bool) -> tuple[object, str]:
    """(StableDiffusion, cache key): the tiny random stack, a diffusers folder or a zoo entry."""
    if quick:
        from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

        return tiny_stable_diffusion(seed=0).to(device), "sd_tiny-seed0"
    from diffrepro.core.models.stable_diffusion import StableDiffusion

    folder = Path(name)
    if folder.is_dir():
        return StableDiffusion.load(folder, device=device), str(folder.resolve())
    from diffrepro.core import zoo

    if name not in zoo.entries():
        raise ValueError(f"--base {name!r} is neither a folder nor a zoo entry")
    return zoo.load(name, device=str(device), build=False), zoo.path(name, build=False).name


def load_judge(device: torch.device, quick: bool):
    """The zoo's emoji judge, or (``--quick``) a tiny randomly initialised one."""
    if quick:
        from diffrepro.core.emoji import select as emoji_select
        from diffrepro.core.zoo.judge import EmojiJudge, JudgeConfig

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            config = JudgeConfig(
                image_size=16, widths=(8, 16), embed_dim=16, num_emoji=len(emoji_select())
            )
            judge = EmojiJudge(config)
        return judge.eval().to(device)
    from diffrepro.core import zoo

    return zoo.load(JUDGE, device=str(device), build=False)


def native_size(sd) -> int:
    size = sd.unet.config.sample_size
    size = size[0] if isinstance(size, tuple) else size
    return int(size) * sd.vae.downscale_factor


def compare_editing(args: argparse.Namespace) -> int:
    from diffrepro.core.repro import resolve_device, single_threaded_on_cpu

    device = resolve_device(args.device)
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1])
    steps = args.steps if args.steps is not None else (QUICK["steps"] if args.quick else 20)
    count = args.count if args.count is not None else (QUICK["count"] if args.quick else 4)
    if args.tasks is not None and args.count is not None:
        raise ValueError("--tasks and --count cannot be used together: a task file sets the tasks")
    sd, key = load_base(args.base, device, args.quick)
    judge = load_judge(device, args.quick)
    size = native_size(sd)
    tasks = read_tasks(args.tasks, size) if args.tasks is not None else default_tasks(count, size)
    chosen = select(discover(warn=_note), args.methods)
    skipped = [
        f"{slug} ({dist})"
        for slug, dist in PAPERS.items()
        if not is_registered(slug, EDITING_GROUP)
    ]
    for line in skipped:
        _note(f"not installed, skipped: {line}")
    base = Base(sd=sd, key=key, steps=steps)
    with single_threaded_on_cpu(device):
        rows = run_all(chosen, tasks, seeds, base, judge, args.out)
    listed = [{"name": t.name, "source": t.source, "target": t.target} for t in tasks]
    setup = {"base": key, "steps": steps, "seeds": seeds, "device": str(device), "tasks": listed}
    names = [m.name for m in chosen]
    write_report(
        args.out, rows, names, {m.name: m.title for m in chosen}, tasks, seeds, setup, skipped
    )
    print((args.out / "table.md").read_text())
    failed = [r for r in rows if r["status"] != "ok"]
    return 1 if failed else 0


def _note(line: str) -> None:
    print(f"compare: {line}", file=sys.stderr, flush=True)
