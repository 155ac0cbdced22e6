"""guided-diffusion's AttentionBlock: self-attention over the H×W positions of a feature map.

``norm`` (GroupNorm32) → ``qkv`` (1×1 Conv1d, C → 3C) → multi-head attention → ``proj_out``
(zero-initialised 1×1 Conv1d) → residual. The attention itself runs through
:func:`diffrepro.core.attention.attention`, so the fastest backend is used, and accepts an additive
``bias`` broadcastable to (B, heads, HW, HW) (e.g. SDM's uncertainty-guided attention).

The qkv channels are split into heads in one of two orders, both found in official checkpoints:

- legacy (``use_new_attention_order=False``, the default and what the released ADM models use):
  channels are grouped per head as ``[q_h, k_h, v_h]`` for h = 0..heads-1;
- new (``QKVAttention``): ``[q_0..q_{H-1}, k_0..k_{H-1}, v_0..v_{H-1}]``.

``num_head_channels`` (when not -1) overrides ``num_heads``: heads = C // num_head_channels.
"""

from __future__ import annotations

import torch
from torch import nn

from diffrepro.core.attention import attention
from diffrepro.core.nn.normalization import normalization
from diffrepro.core.nn.zero import zero_module


class AttentionBlock(nn.Module):
    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        *,
        use_new_attention_order: bool = False,
        num_groups: int = 32,
    ) -> None:
        super().__init__()
        if num_head_channels != -1:
            if channels % num_head_channels:
                raise ValueError(
                    f"{channels} channels are not divisible by "
                    f"num_head_channels={num_head_channels}"
                )
            num_heads = channels // num_head_channels
        if channels % num_heads:
            raise ValueError(f"{channels} channels are not divisible by num_heads={num_heads}")
        self.channels = channels
        self.num_heads = num_heads
        self.use_new_attention_order = use_new_attention_order
        self.norm = normalization(channels, num_groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, c, *spatial = x.shape
        tokens = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(tokens))
        q, k, v = self.split_heads(qkv)
        h = attention(q, k, v, bias=bias if bias is None else bias.to(q.dtype))
        h = h.permute(0, 1, 3, 2).reshape(b, c, -1)
        return (tokens + self.proj_out(h)).reshape(b, c, *spatial)

    def split_heads(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3C, N) → q, k, v each (B, heads, N, d) in this block's channel order."""
        b, width, n = qkv.shape
        d = width // (3 * self.num_heads)
        if self.use_new_attention_order:
            qkv = qkv.reshape(b, 3, self.num_heads, d, n).transpose(0, 1)
        else:
            qkv = qkv.reshape(b, self.num_heads, 3, d, n).transpose(0, 2).transpose(1, 2)
        q, k, v = (t.transpose(-1, -2) for t in qkv)
        return q, k, v
