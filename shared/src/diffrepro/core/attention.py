"""One attention entry point, ``attention(q, k, v, bias=None, scale=None, backend="auto")``.

Layout is (batch, heads, tokens, head_dim). Queries and keys may have different token counts.
``bias`` is additive and broadcastable to (B, H, Nq, Nk).

Backends: ``sdpa`` (torch's scaled_dot_product_attention) and ``math`` (explicit softmax, the
only one that can expose attention probabilities). The Triton backend is added by the kernels work.
"""

from __future__ import annotations

import math as _math

import torch
import torch.nn.functional as F


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Softmax(q kᵀ · scale + bias) v over the last two dims."""
    if backend == "math":
        return attention_math(q, k, v, bias=bias, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)


def attention_probs(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """The attention probabilities softmax(q kᵀ · scale + bias), shape (B, H, Nq, Nk)."""
    scale = 1.0 / _math.sqrt(q.shape[-1]) if scale is None else scale
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1)


def attention_math(q, k, v, *, bias=None, scale=None) -> torch.Tensor:
    return torch.matmul(attention_probs(q, k, bias=bias, scale=scale), v)
