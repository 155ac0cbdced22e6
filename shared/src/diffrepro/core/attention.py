"""One attention entry point: ``attention(q, k, v, *, bias=None, scale=None, backend="auto")``.

Layout is (batch, heads, tokens, head_dim); queries and keys may have different token counts
(cross-attention). ``bias`` is additive and broadcastable to (B, H, Nq, Nk) (a boolean mask is
turned into 0 / -inf first: True means "attend"). ``scale`` defaults to head_dim ** -0.5.

Backends:

- ``triton``: our fused kernels (``kernels/flash_attention.py``), fp16/bf16/fp32, head_dim <= 128,
  on CUDA, or on CPU tensors under ``TRITON_INTERPRET=1``. A bias that requires grad gets one.
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention``.
- ``math``: explicit softmax, the only backend that can expose or replace the probabilities
  (``probs_hook``) and the reference for float64 work (EDICT, inversion tests).

``auto`` picks triton for CUDA tensors it supports, else sdpa; ``attention_backend("math")`` (a
context manager) or the environment variable ``DIFFREPRO_ATTENTION`` force one (see
``kernels/backend.py``). A ``probs_hook`` always runs the math backend. Importing this module
does not import triton.
"""

from __future__ import annotations

import math as _math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from diffrepro.core.kernels.backend import BACKENDS, attention_backend, select_attention_backend

__all__ = ["BACKENDS", "attention", "attention_backend", "attention_math", "attention_probs"]

ProbsHook = Callable[[torch.Tensor], "torch.Tensor | None"]


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    backend: str = "auto",
    probs_hook: ProbsHook | None = None,
) -> torch.Tensor:
    """softmax(q kᵀ · scale + bias) v, shape (B, H, Nq, d_v).

    ``probs_hook(probs)`` sees the (B, H, Nq, Nk) probabilities and may return a replacement; it
    needs the math backend (asking for another one explicitly is an error).
    """
    _check_shapes(q, k, v, bias)
    bias = _additive(bias, q.dtype)
    scale = 1.0 / _math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if probs_hook is not None:
        if backend not in ("auto", "math"):
            raise ValueError(f"probs_hook needs the 'math' backend, not {backend!r}")
        return attention_math(q, k, v, bias=bias, scale=scale, probs_hook=probs_hook)
    name = select_attention_backend(q, k, v, backend)
    if name == "math":
        return attention_math(q, k, v, bias=bias, scale=scale)
    if name == "triton":
        from diffrepro.core.kernels.flash_attention import flash_attention

        return flash_attention(q, k, v, bias, scale)
    mask = None if bias is None else bias.to(q.dtype).reshape((1,) * (4 - bias.dim()) + bias.shape)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def attention_probs(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """The probabilities softmax(q kᵀ · scale + bias), shape (B, H, Nq, Nk), in q's dtype.

    Half-precision inputs take the softmax in float32; float64 stays float64.
    """
    bias = _additive(bias, q.dtype)
    scale = 1.0 / _math.sqrt(q.shape[-1]) if scale is None else scale
    compute = torch.promote_types(q.dtype, torch.float32)
    scores = torch.matmul(q.to(compute), k.to(compute).transpose(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias.to(compute)
    return scores.softmax(dim=-1).to(q.dtype)


def attention_math(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    probs_hook: ProbsHook | None = None,
) -> torch.Tensor:
    """Explicit-softmax attention; ``probs_hook`` may read or replace the probabilities."""
    probs = attention_probs(q, k, bias=bias, scale=scale)
    if probs_hook is not None:
        replaced = probs_hook(probs)
        probs = probs if replaced is None else replaced
    return torch.matmul(probs.to(v.dtype), v)


def _additive(bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask (True = attend) as an additive 0 / -inf bias; other biases unchanged."""
    if bias is None or bias.dtype != torch.bool:
        return bias
    return torch.zeros(bias.shape, dtype=dtype, device=bias.device).masked_fill(~bias, -_math.inf)


def _check_shapes(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None
) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"attention expects (batch, heads, tokens, head_dim) tensors, got q{tuple(q.shape)}, "
            f"k{tuple(k.shape)}, v{tuple(v.shape)}"
        )
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"attention shapes do not match: "
            f"q{tuple(q.shape)}, k{tuple(k.shape)}, v{tuple(v.shape)}"
        )
    if bias is not None:
        target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        if not _broadcasts_to(tuple(bias.shape), target):
            raise ValueError(
                f"attention bias of shape {tuple(bias.shape)} does not broadcast to {target}"
            )


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether ``shape`` broadcasts to ``target`` (plain Python: torch.broadcast_shapes is slow
    on its first call)."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target)))
