"""Training helpers shared by the zoo's builders: the core loop plus one-line progress.

:func:`fit` runs :func:`diffrepro.core.train.train` in ``ctx.out_dir/train`` (TensorBoard logs
are kept there, the training checkpoints are removed once done). When stderr is not a terminal
(a log, CI), the core loop prints ``zoo NAME: step S/N (P%), loss L, elapsed E, ETA R`` every
``DIFFREPRO_PROGRESS_SECONDS`` seconds and at the end; on a terminal its progress bar shows.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from diffrepro.core.train import LossFn, TrainConfig, TrainResult, train
from diffrepro.core.zoo.registry import BuildContext


def fit(
    name: str,
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.utils.data.Dataset | Callable[[int], Any],
    config: TrainConfig,
    ctx: BuildContext,
    *,
    model_config: Any = None,
) -> TrainResult:
    """Train with the core loop; a non-finite loss stops it with ``FloatingPointError``."""
    work = ctx.out_dir / "train"
    result = train(
        model,
        loss_fn,
        data,
        config,
        work,
        model_config=model_config,
        resume=False,
        device=ctx.device,
        desc=f"zoo {name}",
    )
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    if result.ema is not None:
        result.ema.copy_to(model)
    return result
