"""Training the base pixel model (``adir train``) with the core training loop.

The loss is ADM's: the ε MSE, plus the variational-bound term for the variance channels when the
UNet learns sigma (hybrid loss, vb on a detached mean).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from diffrepro.core.losses import diffusion_loss, sample_timesteps
from diffrepro.core.train import train

from .config import ADIRConfig
from .model import build_model, train_schedule


def epsilon_loss(cfg: ADIRConfig) -> Callable[[nn.Module, Tensor], Tensor]:
    schedule = train_schedule(cfg)

    def loss_fn(model: nn.Module, x0: Tensor) -> Tensor:
        t = sample_timesteps(len(x0), len(schedule), device=x0.device)
        noise = torch.randn_like(x0)
        return diffusion_loss(model, x0, t, schedule, noise=noise, variance=cfg.variance)[
            "loss"
        ].mean()

    return loss_fn


def train_base(
    data: torch.utils.data.Dataset | Callable[[int], Any],
    cfg: ADIRConfig,
    out_dir: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    resume: bool = True,
) -> Path:
    """Train (or resume) a base model; returns the path of its final (EMA) weights."""
    model = build_model(cfg)
    config = dataclasses.replace(cfg.train, seed=seed)
    result = train(
        model,
        epsilon_loss(cfg),
        data,
        config,
        out_dir,
        model_config=cfg,
        resume=resume,
        device=device,
    )
    ema = result.checkpoint / "ema.safetensors"
    return ema if ema.is_file() else result.checkpoint / "model.safetensors"
