"""One-line progress (step, loss, elapsed, ETA) when stderr is not a terminal.

The core loop draws a progress bar on a terminal only; :func:`with_progress` wraps a loss
function so that logs still get a line every ``every`` steps (one loss call per step)."""

from __future__ import annotations

import sys
import time


def with_progress(loss_fn, total: int, start: int, every: int, label: str):
    """``loss_fn`` that also prints ``label: step s/total loss … elapsed … ETA …`` lines."""
    if sys.stderr.isatty():
        return loss_fn
    state = {"step": start, "t0": time.perf_counter()}

    def fn(model, batch):
        loss = loss_fn(model, batch)
        state["step"] += 1
        done = state["step"] - start
        if state["step"] % every == 0 or state["step"] == total:
            elapsed = time.perf_counter() - state["t0"]
            eta = elapsed / done * (total - state["step"])
            print(
                f"{label}: step {state['step']}/{total} loss {float(loss.detach()):.4f} "
                f"elapsed {elapsed:.0f}s ETA {eta:.0f}s",
                file=sys.stderr,
                flush=True,
            )
        return loss

    return fn
