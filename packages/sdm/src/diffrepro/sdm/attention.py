"""Uncertainty-guided attention (UGA, spec §3.5): softmax(QKᵀ/√d + F(u)) V.

F is a small learnable function of the uncertainty map downsampled to the feature resolution
(four 3×3 convolutions, per the secondary source), giving one additive bias per head and per key
position; it goes to the core AttentionBlock's ``bias``. The last convolution starts at zero,
so an untrained block is exactly plain self-attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffrepro.core.nn import AttentionBlock, zero_module


class UncertaintyGuidedAttention(nn.Module):
    def __init__(
        self, channels: int, num_heads: int, *, num_groups: int = 32, hidden: int = 16
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attention = AttentionBlock(channels, num_heads, num_groups=num_groups)
        self.bias_net = nn.Sequential(
            nn.Conv2d(1, hidden, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.SiLU(),
            zero_module(nn.Conv2d(hidden, num_heads, 3, padding=1)),
        )

    def key_bias(self, uncertainty: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """F(u) as a per-key bias of shape (B, heads, 1, H·W), broadcast over the queries."""
        u = F.adaptive_avg_pool2d(uncertainty, size)
        return self.bias_net(u).flatten(2)[:, :, None, :]

    def forward(self, x: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
        return self.attention(x, bias=self.key_bias(uncertainty, x.shape[-2:]))
