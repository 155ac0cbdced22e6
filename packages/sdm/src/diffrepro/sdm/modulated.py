"""StyleGAN2 weight modulation / demodulation for the decoder (spec §4).

Weights are initialised with variance 1/fan_in and stored at that scale, not with StyleGAN2's
equalised learning rate: with one Adam learning rate for the whole U-Net, unit-variance weights
would make the decoder's relative updates √fan_in times smaller than the encoder's. A per-layer
affine map turns the style vector into per-input-channel scales (bias 1 at init);
demodulation renormalises each output filter to unit norm. Modulation scales the input
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
        fan_in = in_channels * kernel_size**2
        weight = torch.randn(out_channels, in_channels, kernel_size, kernel_size) / math.sqrt(
            fan_in
        )
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = nn.Linear(style_dim, in_channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.ones_(self.affine.bias)
        self.demodulate = demodulate
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        scales = self.affine(style)  # (B, in)
        out = F.conv2d(x * scales[:, :, None, None], self.weight, padding=self.padding)
        if self.demodulate:  # ‖w ⊙ s‖ per (sample, output filter), without materialising w ⊙ s
            norms = scales.square() @ self.weight.square().sum(dim=(2, 3)).T
            out = out * torch.rsqrt(norms + 1e-8)[:, :, None, None]
        return out + self.bias[None, :, None, None]


class StyledConv(nn.Module):
    """Modulated 3×3 conv, bias and leaky ReLU(0.2) with StyleGAN2's √2 gain."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x, style), 0.2) * math.sqrt(2)
