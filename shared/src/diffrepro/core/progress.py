"""Progress for long work: a tqdm bar on a terminal, periodic one-line reports in a log.

A bar redrawn with carriage returns is unreadable in a log file, and a disabled bar prints
nothing, so when stderr is not a terminal :class:`ProgressLines` prints
``DESC: step 120/600 (20%), loss 0.1234, elapsed 1m02s, ETA 4m08s`` at most every
``DIFFREPRO_PROGRESS_SECONDS`` (default 30) seconds, and at the last step. :func:`track` wraps an
iterable with whichever of the two fits.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


class ProgressLines:
    """Periodic one-line progress reports on stderr (for logs, where a bar would be noise)."""

    def __init__(self, desc: str, total: int, start: int = 0) -> None:
        self.desc, self.total, self.start = desc, total, start
        self.every = float(os.environ.get("DIFFREPRO_PROGRESS_SECONDS", "30"))
        self.began = self.last = time.monotonic()

    def update(self, done: int, extra: str = "") -> None:
        now = time.monotonic()
        if now - self.last < self.every and not 0 < self.total <= done:
            return
        self.last = now
        elapsed = now - self.began
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        parts = [f"{self.desc}: step {done}/{self.total} ({100 * done // max(self.total, 1)}%)"]
        parts += [extra] if extra else []
        parts += [f"elapsed {duration(elapsed)}", f"ETA {duration(eta)}"]
        print(", ".join(parts), file=sys.stderr, flush=True)


def on_terminal() -> bool:
    """Whether progress goes to a terminal (a bar) rather than a log (lines)."""
    return sys.stderr.isatty()


def track(
    items: Iterable[T], *, desc: str, total: int | None = None, disable: bool = False
) -> Iterator[T]:
    """Iterate ``items`` with a bar on a terminal or periodic lines in a log."""
    if disable:
        yield from items
        return
    if total is None:
        total = len(items) if hasattr(items, "__len__") else 0  # type: ignore[arg-type]
    if on_terminal():
        yield from tqdm(items, desc=desc, total=total or None)
        return
    lines = ProgressLines(desc, total)
    for done, item in enumerate(items, start=1):
        yield item
        lines.update(done)


def duration(seconds: float) -> str:
    """``1m02s`` / ``7s``; ``?`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
