"""Decoding progress: a bar on a terminal, one line every ~10 % of the steps otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def step_progress(total: int, label: str = "masksketch") -> tuple[Callable[[int], None], Callable]:
    """(callback(step), close()) for ``total`` decoding steps."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc=label, unit="step")
        return (lambda step: bar.update(step - bar.n)), bar.close
    start, every = time.perf_counter(), max(1, total // 10)

    def line(step: int) -> None:
        if step % every == 0 or step == total:
            elapsed = time.perf_counter() - start
            eta = elapsed / step * (total - step)
            print(
                f"{label}: step {step}/{total} elapsed {elapsed:.0f}s ETA {eta:.0f}s",
                file=sys.stderr,
                flush=True,
            )

    return line, lambda: None
