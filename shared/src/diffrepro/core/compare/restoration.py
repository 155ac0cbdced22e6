"""``diffrepro compare restoration``: the same inpainting problems through every installed
restoration method, measured in one table (``table.md``, ``metrics.json``, ``grid.png``)."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from diffrepro.core.compare.contract import is_registered, select
from diffrepro.core.compare.editing import load_judge
from diffrepro.core.compare.figure import image_grid
from diffrepro.core.compare.memory import peak_memory
from diffrepro.core.compare.report import find_row, summarise, table, write_outputs
from diffrepro.core.compare.restoration_metrics import restoration_metrics
from diffrepro.core.compare.restoration_tasks import MASKS, RestorationTask, default_tasks
from diffrepro.core.compare.restoring import (
    RESTORATION_GROUP,
    RestorationMethod,
    check_restoration,
    discover_restorers,
)
from diffrepro.core.compare.runner import debugging, run_all

OUT = Path("runs/compare/restoration")
DEFAULT_BASE = "emoji-ddpm"
PAPERS = {"adir": "diffrepro-adir", "sdm": "diffrepro-sdm"}
REFERENCE = "repaint"
MEASURES = (
    ("psnr_hole", "PSNR hole (dB)"),
    ("ssim_hole", "SSIM hole"),
    ("residual", "residual RMS"),
    ("residual_sigma", "residual / σ"),
    ("judge_dist", "judge dist"),
    ("seconds", "s / image"),
    ("network_evals", "network evals"),
    ("peak_mib", "peak MiB"),
)
QUICK = {"count": 1, "seeds": [0], "steps": 4, "masks": ["box", "pixels"]}


@dataclass(frozen=True)
class RestorationBase:
    """The shared pixel DDPM and the sampler step count every method gets."""

    model: object  # a PixelDiffusion
    key: str
    steps: int


def load_pixel_base(name: str, device: torch.device, quick: bool) -> tuple[object, str]:
    """(PixelDiffusion, cache key): a tiny random ADM UNet, an ADM-layout folder or a zoo entry."""
    from diffrepro.core.zoo.ddpm import PixelDiffusion, open_ddpm

    if quick:
        from diffrepro.core.models.unet import UNetConfig, UNetModel
        from diffrepro.core.schedules import Schedule

        config = UNetConfig(
            image_size=32, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
            attention_resolutions=(8,), num_head_channels=8, num_groups=4,
        )  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            unet = UNetModel(config).eval().to(device)
        return PixelDiffusion(unet, Schedule.named("linear", 1000)), "adm_tiny-seed0"
    folder = Path(name)
    if folder.is_dir():
        return open_ddpm(folder, str(device)), str(folder.resolve())
    from diffrepro.core import zoo

    if name not in zoo.entries():
        raise ValueError(f"--base {name!r} is neither an ADM-layout folder nor a zoo entry")
    model = zoo.load(name, device=str(device), build=False)
    if model.unet.config.num_classes is not None:
        raise ValueError(
            f"--base {name!r} is class-conditional; restoration needs an unconditional model"
        )
    return model, zoo.path(name, build=False).name


def run_restoration(
    method: RestorationMethod, task: RestorationTask, seed: int, base: RestorationBase, judge
) -> dict:
    """One restoration, measured; a raised error becomes a failed cell."""
    device = next(base.model.unet.parameters()).device
    problem = _on(task.problem, device)
    torch.manual_seed(seed)  # methods seed their own draws; this pins any stray one
    try:
        with peak_memory(device) as peak:
            start = time.perf_counter()
            result = method.restore(base.model, problem, seed=seed, steps=base.steps)
            seconds = time.perf_counter() - start
        check_restoration(result, problem, method.name)
        values = restoration_metrics(judge, task.image, task.problem, result.restored.cpu())
    except Exception as err:  # one failing method must not stop the others
        if debugging():
            traceback.print_exc()
        return {"status": "failed", "error": f"{type(err).__name__}: {err}".splitlines()[0]}
    cell = {"status": "ok", "seconds": seconds, "network_evals": int(result.network_evals)}
    cell["peak_mib"] = peak["mib"]
    cell.update(values)
    cell["images"] = {"restored": result.restored.detach().float().cpu().numpy()[0]}
    return cell


def compare_restoration(args: argparse.Namespace) -> int:
    from diffrepro.core.repro import resolve_device, single_threaded_on_cpu

    device = resolve_device(args.device)
    quick = args.quick
    seeds = args.seeds if args.seeds is not None else (QUICK["seeds"] if quick else [0, 1])
    steps = args.steps if args.steps is not None else (QUICK["steps"] if quick else 50)
    count = args.count if args.count is not None else (QUICK["count"] if quick else 3)
    masks = args.masks if args.masks is not None else (QUICK["masks"] if quick else list(MASKS))
    model, key = load_pixel_base(args.base, device, quick)
    judge = load_judge(device, quick)
    size = model.unet.config.image_size
    tasks = default_tasks(count, size, list(dict.fromkeys(masks)), args.sigma)
    chosen = select(discover_restorers(warn=_note), args.methods)
    skipped = [
        f"{slug} ({dist})"
        for slug, dist in PAPERS.items()
        if not is_registered(slug, RESTORATION_GROUP)
    ]
    for line in skipped:
        _note(f"not installed, skipped: {line}")
    base = RestorationBase(model=model, key=key, steps=steps)
    with single_threaded_on_cpu(device):
        rows = run_all(chosen, tasks, seeds, base, judge, args.out, run=run_restoration)
    setup = {
        "base": key, "steps": steps, "seeds": seeds, "sigma": args.sigma, "masks": masks,
        "device": str(device), "tasks": [t.name for t in tasks],
    }  # fmt: skip
    write_restoration_report(args.out, rows, chosen, tasks, seeds, setup, skipped)
    print((args.out / "table.md").read_text())
    return 1 if any(r["status"] != "ok" for r in rows) else 0


def write_restoration_report(
    out_dir: Path,
    rows: list[dict],
    methods: list[RestorationMethod],
    tasks: list[RestorationTask],
    seeds: list[int],
    setup: dict,
    skipped: list[str],
) -> dict:
    names = [m.name for m in methods]
    summary = summarise(rows, names, seeds, MEASURES, REFERENCE)
    first = seeds[0]
    grid = []
    for task in tasks:
        row = [task.image[0].numpy(), _shown(task)]
        for name in names:
            cell = find_row(rows, name, task.name, first)
            row.append(cell["images"]["restored"] if cell and cell["status"] == "ok" else None)
        grid.append(row)
    image_grid(grid, ["truth", "measurement", *names], out_dir / "grid.png")
    text = [
        "# diffrepro compare restoration",
        "",
        f"Base: `{setup['base']}`, {setup['steps']} sampler steps, noise σ = {setup['sigma']}, "
        f"seeds {seeds}, {len(tasks)} inpainting problems (masks: {', '.join(setup['masks'])}), "
        f"device {setup['device']}. Mean ± sd over seeds of each method's mean over problems. "
        "The judge distance comes from the core emoji judge, not LPIPS (see docs/compare.md).",
        "",
        table(summary, {m.name: m.title for m in methods}, MEASURES, REFERENCE),
        "",
        f"Grid (`grid.png`): rows = problems, columns = truth, measurement (hole in grey), "
        f"{', '.join(names)} (seed {first}).",
        "",
        "Problems: " + "; ".join(t.name for t in tasks),
    ]
    write_outputs(out_dir, text, summary, rows, setup, skipped)
    return summary


def _shown(task: RestorationTask):
    """The measurement as a picture: known pixels as measured, the hole (zeros) mid-grey."""
    return task.problem.measurement[0].clamp(-1, 1).numpy()


def _on(problem, device: torch.device):
    from dataclasses import replace

    return replace(
        problem,
        measurement=problem.measurement.to(device),
        mask=problem.mask.to(device),
        corpus=problem.corpus.to(device),
    )


def _note(line: str) -> None:
    print(f"compare: {line}", file=sys.stderr, flush=True)
