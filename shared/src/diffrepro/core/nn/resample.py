"""2× nearest upsampling and 2× downsampling, each optionally followed by a convolution.

Parameter names follow guided-diffusion: ``Upsample.conv`` (3×3) and ``Downsample.op`` (3×3 stride
2 convolution, or 2×2 average pooling when ``use_conv=False``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Upsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, self.out_channels, 3, padding=1)
        elif self.out_channels != channels:
            raise ValueError("Upsample without a convolution cannot change the channel count")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.op: nn.Module
        if use_conv:
            self.op = nn.Conv2d(channels, self.out_channels, 3, stride=2, padding=1)
        elif self.out_channels == channels:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)
        else:
            raise ValueError("Downsample without a convolution cannot change the channel count")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)
