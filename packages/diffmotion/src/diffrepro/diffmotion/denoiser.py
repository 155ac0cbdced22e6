"""TimeGrad's denoising network ("EpsilonTheta"), as DiffMotion configures it.

A WaveNet/DiffWave-style stack of gated, dilated 1-D convolutions that runs over the **feature
axis**: the pose vector ``(B, 1, D)`` is a length-``D`` signal with one channel, circularly
padded by two on each side. The LSTM output conditions every layer through a small upsampler
(``H -> D/2 -> D``). Module names follow TimeGrad's so foreign weights map onto them directly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig

MAX_STEPS = 500  # size of TimeGrad's precomputed step-embedding table
_SLOPE = 0.4


class DiffusionEmbedding(nn.Module):
    """Table ``[sin(n 10^(4d/dim)), cos(n 10^(4d/dim))]`` -> Linear -> SiLU -> Linear -> SiLU."""

    def __init__(self, dim: int, proj_dim: int, max_steps: int = MAX_STEPS) -> None:
        super().__init__()
        steps = torch.arange(max_steps, dtype=torch.float32)[:, None]
        table = steps * 10.0 ** (torch.arange(dim, dtype=torch.float32)[None, :] * 4.0 / dim)
        self.register_buffer(
            "embedding", torch.cat([table.sin(), table.cos()], 1), persistent=False
        )
        self.projection1 = nn.Linear(2 * dim, proj_dim)
        self.projection2 = nn.Linear(proj_dim, proj_dim)

    def forward(self, step: Tensor) -> Tensor:
        x = self.embedding[step]
        return F.silu(self.projection2(F.silu(self.projection1(x))))


class CondUpsampler(nn.Module):
    """The LSTM output ``(B, H)`` to a one-channel length-``D`` signal ``(B, 1, D)``."""

    def __init__(self, cond_length: int, target_dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(cond_length, target_dim // 2)
        self.linear2 = nn.Linear(target_dim // 2, target_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.linear1(x), _SLOPE)
        return F.leaky_relu(self.linear2(x), _SLOPE)[:, None, :]


class ResidualBlock(nn.Module):
    """Gated dilated convolution with step and condition injection; returns (residual, skip)."""

    def __init__(self, channels: int, hidden: int, dilation: int) -> None:
        super().__init__()
        self.dilated_conv = nn.Conv1d(
            channels, 2 * channels, 3, padding=dilation, dilation=dilation, padding_mode="circular"
        )
        self.diffusion_projection = nn.Linear(hidden, channels)
        self.conditioner_projection = nn.Conv1d(
            1, 2 * channels, 1, padding=2, padding_mode="circular"
        )
        self.output_projection = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x: Tensor, cond: Tensor, step: Tensor) -> tuple[Tensor, Tensor]:
        y = x + self.diffusion_projection(step)[:, :, None]
        y = self.dilated_conv(y) + self.conditioner_projection(cond)
        gate, filt = y.chunk(2, dim=1)
        y = F.leaky_relu(self.output_projection(torch.sigmoid(gate) * torch.tanh(filt)), _SLOPE)
        residual, skip = y.chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class EpsilonTheta(nn.Module):
    """``eps_theta(x_n, n, h)`` for pose vectors ``x_n`` of shape ``(B, 1, D)``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        padded = cfg.pose_dim + 4
        largest = 2 ** ((min(cfg.residual_layers, cfg.dilation_cycle) - 1) % cfg.dilation_cycle)
        if largest > padded:
            raise ValueError(
                f"a dilation of {largest} does not fit the circularly padded pose length {padded}: "
                f"use fewer residual layers or a shorter dilation cycle"
            )
        if cfg.diffusion_steps > MAX_STEPS:
            raise ValueError(
                f"diffusion_steps {cfg.diffusion_steps} exceeds the {MAX_STEPS}-step table"
            )
        c = cfg.residual_channels
        self.input_projection = nn.Conv1d(1, c, 1, padding=2, padding_mode="circular")
        self.diffusion_embedding = DiffusionEmbedding(cfg.step_embedding_dim, cfg.residual_hidden)
        self.cond_upsampler = CondUpsampler(cfg.lstm_hidden, cfg.pose_dim)
        self.residual_layers = nn.ModuleList(
            ResidualBlock(c, cfg.residual_hidden, 2 ** (i % cfg.dilation_cycle))
            for i in range(cfg.residual_layers)
        )
        self.skip_projection = nn.Conv1d(c, c, 3)
        self.output_projection = nn.Conv1d(c, 1, 3)
        nn.init.zeros_(self.output_projection.weight)

    def forward(self, x: Tensor, step: Tensor, cond: Tensor) -> Tensor:
        h = F.leaky_relu(self.input_projection(x), _SLOPE)
        emb = self.diffusion_embedding(step)
        cond = self.cond_upsampler(cond)
        skips = []
        for layer in self.residual_layers:
            h, skip = layer(h, cond, emb)
            skips.append(skip)
        h = torch.stack(skips).sum(0) / math.sqrt(len(self.residual_layers))
        return self.output_projection(F.leaky_relu(self.skip_projection(h), _SLOPE))
