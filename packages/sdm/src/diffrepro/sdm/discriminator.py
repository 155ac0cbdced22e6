"""A StyleGAN2-style residual discriminator on concat(m_0 - 0.5, image) (MAT's layout, spec §3.4).

fromRGB 1×1 → residual blocks (two 3×3 convs, the second strided, plus a 1×1 strided skip,
summed and scaled by 1/√2) down to 4×4 → minibatch standard deviation (group size 4) → 3×3 conv
→ flatten → linear → linear to one logit. Leaky ReLU(0.2) throughout; widths
``base · 2^level`` capped at ``max_channels`` (the width knob).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DiscriminatorConfig:
    resolution: int = 512
    base_channels: int = 64
    max_channels: int = 512
    stddev_group: int = 4


class ResidualDown(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.conv2(h), 0.2)
        return (h + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        levels = int(math.log2(cfg.resolution // 4))
        if 4 * 2**levels != cfg.resolution:
            raise ValueError(
                f"the discriminator needs a power-of-two resolution ≥ 4, got {cfg.resolution}"
            )
        widths = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(levels + 1)]
        self.stddev_group = cfg.stddev_group
        self.from_rgb = nn.Conv2d(4, widths[0], 1)
        self.blocks = nn.Sequential(
            *[ResidualDown(widths[i], widths[i + 1]) for i in range(levels)]
        )
        self.conv = nn.Conv2d(widths[-1] + 1, widths[-1], 3, padding=1)
        self.fc = nn.Linear(widths[-1] * 16, widths[-1])
        self.out = nn.Linear(widths[-1], 1)

    def forward(self, image: torch.Tensor, mask0: torch.Tensor) -> torch.Tensor:
        """One logit per image (higher = real)."""
        h = F.leaky_relu(self.from_rgb(torch.cat([mask0 - 0.5, image], dim=1)), 0.2)
        h = self.minibatch_stddev(self.blocks(h))
        h = F.leaky_relu(self.conv(h), 0.2)
        return self.out(F.leaky_relu(self.fc(h.flatten(1)), 0.2)).squeeze(1)

    def minibatch_stddev(self, h: torch.Tensor) -> torch.Tensor:
        """Append the mean feature std over groups of samples as one extra channel."""
        b, c, height, width = h.shape
        group = math.gcd(b, self.stddev_group)
        stats = h.reshape(group, b // group, c, height, width).std(dim=0, unbiased=False)
        stats = stats.mean(dim=(1, 2, 3))[:, None, None, None].repeat(group, 1, height, width)
        return torch.cat([h, stats], dim=1)
