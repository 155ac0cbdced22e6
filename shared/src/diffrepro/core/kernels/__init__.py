"""Fused kernels (Triton) with plain-torch fallbacks.

``group_norm_silu`` is the fused GroupNorm+SiLU entry used by the core ResBlock.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def group_norm_silu(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """SiLU(GroupNorm(x)); computed in float32 for half inputs, returned in x's dtype."""
    y = F.group_norm(x.float(), num_groups, weight, bias, eps)
    return F.silu(y).to(x.dtype)
