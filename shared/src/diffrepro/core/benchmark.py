"""Small helpers for benchmarks (``nox -s bench``): timing, peak memory, JSON + Markdown output.

Benchmarks report ratios against a reference measured in the same process, never absolute
pass/fail thresholds.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

BENCH_DIR = Path("runs/bench")


def measure(
    fn: Callable[[], Any], *, device: str = "cpu", warmup: int = 1, repeat: int = 3
) -> dict:
    """Median wall time (s) of ``fn()`` over ``repeat`` runs, and its peak CUDA memory (bytes).

    Peak memory is only measured on CUDA; on CPU it is reported as ``None``.
    """
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    return {"time_s": sorted(times)[len(times) // 2], "peak_mem_bytes": peak}


def machine() -> dict:
    """What the numbers were measured on."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor(),
        "gpu": gpu,
    }


def write_results(
    name: str, rows: Sequence[dict], *, notes: str = "", out_dir: Path = BENCH_DIR
) -> Path:
    """Write ``rows`` to ``<out_dir>/<name>.json`` and a Markdown table to ``<name>.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = machine()
    (out_dir / f"{name}.json").write_text(
        json.dumps({"machine": meta, "rows": list(rows)}, indent=2)
    )
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [f"# {name}", "", f"Measured on: {meta}", ""]
    if notes:
        lines += [notes, ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
