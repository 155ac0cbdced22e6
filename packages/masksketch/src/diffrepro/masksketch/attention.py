"""Self-attention maps of a MaskGIT transformer on a complete token sequence (spec §3.2).

As the official ``tokens_to_attn``: run the transformer deterministically on s = [c, s_1..s_N],
capture each selected layer's query and key projections and recompute
A^{l,h} = softmax(Q K^T / sqrt(d)) over the whole sequence, class row and column included.
We keep the *log*-attention (``log_softmax`` of the logits), so log A never underflows to -inf
and 0 · log 0 never makes a NaN (spec pitfall 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from diffrepro.maskgit.transformer import MaskGitTransformer

AttentionFn = Callable[[torch.Tensor], torch.Tensor]
"""tokens (B, L) -> log-attention (B, |layers|, H, L, L)."""


def query_key(attn_module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, K), each (B, H, L, d), of a :class:`SelfAttention` for its input ``x`` (B, L, D)."""
    b, n, d = x.shape
    qkv = attn_module.qkv(x).view(b, n, 3, attn_module.heads, d // attn_module.heads)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4)
    return q, k


@torch.no_grad()
def log_attention(
    model: MaskGitTransformer, tokens: torch.Tensor, layers: tuple[int, ...]
) -> torch.Tensor:
    """log A (B, |layers|, H, L, L) of the chosen 0-indexed ``layers``, in that order.

    The model must be in eval mode (the official code runs it with ``deterministic=True``)."""
    if model.training:
        raise ValueError("attention maps need the transformer in eval mode (model.eval())")
    depth = len(model.blocks)
    if not layers or max(layers) >= depth or min(layers) < 0:
        raise ValueError(f"layers {list(layers)} do not exist in a {depth}-layer transformer")
    inputs: dict[int, torch.Tensor] = {}
    handles = [
        model.blocks[i].attn.register_forward_pre_hook(
            lambda module, args, i=i: inputs.__setitem__(i, args[0])
        )
        for i in layers
    ]
    try:
        model(tokens)
    finally:
        for handle in handles:
            handle.remove()
    maps = []
    for i in layers:
        q, k = query_key(model.blocks[i].attn, inputs[i])
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        maps.append(torch.log_softmax(logits.float(), dim=-1))
    return torch.stack(maps, dim=1)


def attention_fn(model: MaskGitTransformer, layers: tuple[int, ...]) -> AttentionFn:
    """The ``tokens -> log A`` callable the structure-guided decoder uses."""
    return lambda tokens: log_attention(model, tokens, layers)
