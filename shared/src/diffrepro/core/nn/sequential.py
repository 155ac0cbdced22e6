"""``TimestepEmbedSequential``: a Sequential that routes each child the inputs it takes.

Timestep blocks (ResBlocks) get ``(x, emb)``, attention blocks get ``(x, bias)`` where ``bias`` is
``attn_bias(height, width)`` (or None), and every other layer gets ``x`` only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from diffrepro.core.nn.resblock import TimestepBlock
from diffrepro.core.nn.self_attention import AttentionBlock

AttentionBias = Callable[[int, int], "torch.Tensor | None"]


class TimestepEmbedSequential(nn.Sequential):
    def forward(  # type: ignore[override]
        self, x: torch.Tensor, emb: torch.Tensor, attn_bias: AttentionBias | None = None
    ) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, TimestepBlock):
                x = layer(x, emb)
            elif isinstance(layer, AttentionBlock):
                x = layer(x, attn_bias(*x.shape[-2:]) if attn_bias is not None else None)
            else:
                x = layer(x)
        return x
