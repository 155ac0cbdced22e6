"""Training helpers shared by the zoo's builders: the core loop plus one-line progress.

:func:`fit` runs :func:`diffrepro.core.train.train` in ``ctx.out_dir/train`` (TensorBoard logs
are kept there, the training checkpoints are removed once done). When stderr is not a terminal
(a log, CI), a line ``zoo NAME: step S/N loss L elapsed E eta R`` is printed every
``every_s`` seconds and at the end; on a terminal the core loop's progress bar shows instead.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from diffrepro.core.train import LossFn, TrainConfig, TrainResult, train
from diffrepro.core.zoo.registry import BuildContext


class ProgressLines:
    """Wraps a loss function; prints periodic progress lines when stderr is not a terminal."""

    def __init__(
        self, name: str, loss_fn: LossFn, total: int, grad_accum: int, every_s: float
    ) -> None:
        self.name, self.loss_fn, self.total = name, loss_fn, total
        self.grad_accum, self.every_s = grad_accum, every_s
        self.enabled = not sys.stderr.isatty()
        self.calls, self.start, self.last = 0, time.perf_counter(), 0.0
        self.recent: list[float] = []

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        loss = self.loss_fn(model, batch)
        self.calls += 1
        self.recent = [*self.recent[-49:], float(loss.detach())]
        step = self.calls // self.grad_accum
        now = time.perf_counter()
        done = self.calls % self.grad_accum == 0
        if self.enabled and done and (now - self.last >= self.every_s or step == self.total):
            self.last = now
            self._line(step, now - self.start)
        return loss

    def _line(self, step: int, elapsed: float) -> None:
        mean = sum(self.recent) / len(self.recent)
        eta = elapsed / step * (self.total - step) if step else math.nan
        print(
            f"zoo {self.name}: step {step}/{self.total} loss {mean:.4f} "
            f"elapsed {_clock(elapsed)} eta {_clock(eta)}",
            file=sys.stderr,
            flush=True,
        )


def fit(
    name: str,
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.utils.data.Dataset | Callable[[int], Any],
    config: TrainConfig,
    ctx: BuildContext,
    *,
    model_config: Any = None,
    every_s: float = 30.0,
) -> TrainResult:
    """Train with the core loop; a non-finite loss stops it with ``FloatingPointError``."""
    work = ctx.out_dir / "train"
    wrapped = ProgressLines(name, loss_fn, config.steps, config.grad_accum, every_s)
    result = train(
        model,
        wrapped,
        data,
        config,
        work,
        model_config=model_config,
        resume=False,
        device=ctx.device,
    )
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    if result.ema is not None:
        result.ema.copy_to(model)
    return result


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"
