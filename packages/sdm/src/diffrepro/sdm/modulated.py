"""StyleGAN2 weight modulation / demodulation for the decoder (spec §4).

Weights are stored at unit variance and scaled by 1/√fan_in at run time (equalised learning
rate); a per-layer affine map turns the style vector into per-input-channel scales (bias 1 at
init); demodulation renormalises each output filter to unit norm. Modulation scales the input
activations and demodulation the outputs, which equals convolving with per-sample weights
(StyleGAN2's non-fused form) while running one ordinary batched convolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ModulatedConv2d(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        *,
        demodulate: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = nn.Linear(style_dim, in_channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.ones_(self.affine.bias)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate = demodulate
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        scales = self.affine(style)  # (B, in)
        weight = self.weight * self.scale
        out = F.conv2d(x * scales[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:  # ‖w ⊙ s‖ per (sample, output filter), without materialising w ⊙ s
            norms = scales.square() @ weight.square().sum(dim=(2, 3)).T
            out = out * torch.rsqrt(norms + 1e-8)[:, :, None, None]
        return out + self.bias[None, :, None, None]


class StyledConv(nn.Module):
    """Modulated 3×3 conv, bias and leaky ReLU(0.2) with StyleGAN2's √2 gain."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x, style), 0.2) * math.sqrt(2)
