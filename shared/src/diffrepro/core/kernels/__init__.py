"""Fused kernels (Triton) with plain-torch fallbacks.

``group_norm_silu`` is the fused GroupNorm+SiLU entry used by the core ResBlock. It runs the
Triton kernel (``kernels/fused_group_norm.py``) when the backend switch allows it (see
``kernels/backend.py``: CUDA tensors with triton installed under ``auto``, or forced with
``attention_backend("triton")`` / ``DIFFREPRO_ATTENTION=triton``), else plain torch. The attention
kernels live in ``kernels/flash_attention.py`` and are reached through ``diffrepro.core.attention``.
Importing this package does not import triton.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffrepro.core.kernels.backend import use_triton_kernels


def group_norm_silu(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """SiLU(GroupNorm(x)) for x of shape (N, C, *); statistics in float32, returned in x's dtype.

    ``backend``: "auto", "triton" (raises if triton cannot run here), "sdpa"/"math" (plain torch).
    """
    if x.dim() < 2 or x.shape[1] % num_groups != 0:
        raise ValueError(
            f"group_norm_silu: {num_groups} groups do not divide the channels of {tuple(x.shape)}"
        )
    if use_triton_kernels(x, backend):
        from diffrepro.core.kernels.fused_group_norm import group_norm_silu_triton

        return group_norm_silu_triton(x, num_groups, weight, bias, eps)
    return group_norm_silu_torch(x, num_groups, weight, bias, eps)


def group_norm_silu_torch(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """The plain-torch reference: GroupNorm in float32 (float64 stays float64), then SiLU."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    weight = None if weight is None else weight.to(dtype)
    bias = None if bias is None else bias.to(dtype)
    return F.silu(F.group_norm(x.to(dtype), num_groups, weight, bias, eps)).to(x.dtype)
