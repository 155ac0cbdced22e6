"""Run every (method, task, seed) cell once, with a cache of finished cells.

A cell is cached as ``<out>/cells/<method>/<task key>-s<seed>-<base key>.json`` (its metrics,
time, UNet evaluations and peak memory) with its images beside it (``.npy``, float32). A rerun
with the same method, task, seed and base (model + step count) reads the cell back instead of
running it. A failing cell is recorded with its error and not cached (a rerun tries it again);
the other cells still run.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffrepro.core.checkpoints import atomic_write
from diffrepro.core.compare.contract import EditMethod, check_result
from diffrepro.core.compare.memory import peak_memory
from diffrepro.core.compare.metrics import edit_metrics
from diffrepro.core.compare.tasks import EditTask
from diffrepro.core.progress import duration

CELL_VERSION = 1  # bump when a cell's measures change meaning


@dataclass(frozen=True)
class Base:
    """The base model and the settings every method shares."""

    sd: object  # a StableDiffusion
    key: str  # names the weights (a zoo build, a folder, or the tiny seed)
    steps: int


def cell_path(out_dir: Path, method: str, task, seed: int, base) -> Path:
    return out_dir / "cells" / method / f"{task.key()}-s{seed}-{_safe(base.key)}-{base.steps}.json"


def run_cell(method: EditMethod, task: EditTask, seed: int, base: Base, judge) -> dict:
    """One edit, measured; a raised error becomes a failed cell."""
    sd = base.sd
    torch.manual_seed(seed)  # methods should seed their own draws; this pins any stray one
    try:
        with peak_memory(sd.device) as peak:
            start = time.perf_counter()
            result = method.edit(
                sd, task.image.to(sd.device, sd.dtype), task.source, task.target,
                seed=seed, steps=base.steps,
            )  # fmt: skip
            seconds = time.perf_counter() - start
        check_result(result, task.image, method.name)
        values = edit_metrics(judge, task.image, task.mask, result, task.target_index)
    except Exception as err:  # one failing method must not stop the others
        if debugging():
            traceback.print_exc()
        return {"status": "failed", "error": f"{type(err).__name__}: {err}".splitlines()[0]}
    cell = {"status": "ok", "seconds": seconds, "unet_evals": int(result.unet_evals)}
    cell["peak_mib"] = peak["mib"]
    cell.update(values)
    cell["images"] = {
        "edited": result.edited.detach().float().cpu().numpy()[0],
        "reconstruction": None
        if result.reconstruction is None
        else result.reconstruction.detach().float().cpu().numpy()[0],
    }
    return cell


def run_all(
    methods: list[EditMethod],
    tasks: list[EditTask],
    seeds: list[int],
    base: Base,
    judge,
    out_dir: Path,
    run=None,
) -> list[dict]:
    """Every cell, in method-major order, read from the cache where it is there.

    ``run(method, task, seed, base, judge) -> cell`` runs one cell (default: one edit); ``base``
    needs a ``key`` and ``steps``, ``task`` a ``name`` and ``key()``.
    """
    run = run_cell if run is None else run
    cells = [(m, t, s) for m in methods for t in tasks for s in seeds]
    began, ran, rows = time.monotonic(), 0, []
    for done, (method, task, seed) in enumerate(cells, start=1):
        path = cell_path(out_dir, method.name, task, seed, base)
        cell = read_cell(path)
        cached = cell is not None
        if cell is None:
            cell = run(method, task, seed, base, judge)
            ran += 1
            if cell["status"] == "ok":
                write_cell(path, cell)
        rows.append({"method": method.name, "task": task.name, "seed": seed, **cell})
        _progress(done, len(cells), ran, began, rows[-1], cached)
    return rows


def write_cell(path: Path, cell: dict) -> None:
    images = cell["images"]
    for kind, array in images.items():
        if array is not None:
            file = path.with_suffix(f".{kind}.npy")
            atomic_write(file, lambda tmp, a=array: _save_npy(tmp, a))
    record = {k: v for k, v in cell.items() if k != "images"}
    record["version"] = CELL_VERSION
    record["images"] = sorted(k for k, a in images.items() if a is not None)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))


def read_cell(path: Path) -> dict | None:
    """A cached cell, or None when it is missing, stale or unreadable (it then runs again)."""
    try:
        record = json.loads(path.read_text())
        if record.pop("version", None) != CELL_VERSION:
            return None
        kinds = record.pop("images")
        images = {"edited": None, "reconstruction": None} if "edited" in kinds else {}
        for kind in kinds:
            images[kind] = np.load(path.with_suffix(f".{kind}.npy"), allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    record["images"] = images
    return record


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.asarray(array, dtype=np.float32), allow_pickle=False)


def _progress(done: int, total: int, ran: int, began: float, row: dict, cached: bool) -> None:
    elapsed = time.monotonic() - began
    left = total - done
    eta = elapsed / ran * left if ran else 0.0
    state = "cached" if cached else row["status"]
    if row["status"] == "ok" and not cached:
        state += f" {row['seconds']:.1f} s"
    elif row["status"] == "failed":
        state += f" ({row['error']})"
    print(
        f"compare: cell {done}/{total} {row['method']} | {row['task']} | seed {row['seed']}: "
        f"{state}, elapsed {duration(elapsed)}, ETA {duration(eta)}",
        file=sys.stderr,
        flush=True,
    )


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[-60:]


def debugging() -> bool:
    import os

    return bool(os.environ.get("DIFFREPRO_DEBUG"))
