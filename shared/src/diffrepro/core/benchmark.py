"""Small helpers for benchmarks (``nox -s bench``): timing, peak memory, JSON + Markdown output.

Benchmarks report ratios against a reference measured in the same process, never absolute
pass/fail thresholds. :func:`compare` times several callables *interleaved* (one run of each per
repeat, the order rotating), so a change of machine load hits all of them alike, and reports the
median ratio to the reference with its spread over the repeats. :func:`peak_memory` measures the
peak of memory allocated during one call: CUDA's allocator statistics on CUDA, and on CPU the
running sum of the memory each recorded op allocates itself and of the free events, in start
order, from ``torch.profiler`` (profile_memory=True): the peak of tensor memory live during the
call above what was live before it, at op granularity (not RSS).
:func:`assert_same_parameters` guards a comparison against mismatched configurations.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
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
    return {
        "time_s": sorted(times)[len(times) // 2],
        "min_s": min(times),
        "max_s": max(times),
        "peak_mem_bytes": peak,
    }


def compare(
    fns: dict[str, Callable[[], Any]],
    *,
    reference: str,
    device: str = "cpu",
    warmup: int = 1,
    repeat: int = 5,
) -> dict[str, dict]:
    """Time each of ``fns`` interleaved; per name: median / min / max seconds and the ratio to
    ``reference`` (median of the per-repeat ratios, with their min and max as the spread)."""
    if reference not in fns:
        raise ValueError(f"reference {reference!r} is not one of {sorted(fns)}")
    if repeat < 1 or warmup < 0:
        raise ValueError(f"repeat must be >= 1 and warmup >= 0, got {repeat} and {warmup}")
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(_timed(fns[name], device))
    out = {}
    for name in names:
        ratios = [a / b for a, b in zip(times[name], times[reference])]
        out[name] = {
            "time_s": statistics.median(times[name]),
            "min_s": min(times[name]),
            "max_s": max(times[name]),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "repeats": repeat,
        }
    return out


def _timed(fn: Callable[[], Any], device: str) -> float:
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_memory(fn: Callable[[], Any], *, device: str = "cpu") -> int:
    """Peak bytes allocated by tensors during one ``fn()`` beyond those live before it."""
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0  # ops carry their own allocations (self usage), "[memory]" events the frees
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def assert_same_parameters(ours: torch.nn.Module, theirs: torch.nn.Module, what: str) -> int:
    """The shared parameter count of two models, or a ValueError naming both counts."""
    a, b = parameter_count(ours), parameter_count(theirs)
    if a != b:
        raise ValueError(f"{what}: configurations differ: {a:,} parameters vs {b:,}")
    return a


def machine() -> dict:
    """What the numbers were measured on."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "cores_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "gpu": gpu,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


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
