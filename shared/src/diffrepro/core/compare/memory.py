"""Peak memory of a block of work: CUDA's allocator peak, or on CPU the resident set size
sampled every few milliseconds by a thread (Linux ``/proc/self/statm``; None elsewhere).

Both are reported as the peak *above* the level at the start of the block, in MiB. The CPU
figure is process-wide (any other thread's allocations count) and misses spikes shorter than
the sampling period: read it as an estimate.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

STATM = Path("/proc/self/statm")
PERIOD_S = 0.005
MIB = 2**20


def rss_bytes() -> int | None:
    try:
        return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict]:
    """``with peak_memory(dev) as peak: ...`` then ``peak["mib"]`` (float or None)."""
    peak: dict = {"mib": None}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield peak
        torch.cuda.synchronize(device)
        peak["mib"] = (torch.cuda.max_memory_allocated(device) - start) / MIB
        return
    start = rss_bytes()
    if start is None:
        yield peak
        return
    highest = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(PERIOD_S):
            highest[0] = max(highest[0], rss_bytes() or 0)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
        highest[0] = max(highest[0], rss_bytes() or 0)
        peak["mib"] = (highest[0] - start) / MIB
