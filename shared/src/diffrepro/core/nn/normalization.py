"""Group normalisation as guided-diffusion uses it.

``GroupNorm32`` normalises in float32 and returns the input dtype (stable under fp16).
``norm_silu(norm, x)`` is SiLU(norm(x)) through :func:`diffrepro.core.kernels.group_norm_silu`,
so the fused kernel is used wherever it is active.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffrepro.core.kernels import group_norm_silu


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (float64 stays float64), returned in the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(x.dtype, torch.float32)
        weight = None if self.weight is None else self.weight.to(dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        return F.group_norm(x.to(dtype), self.num_groups, weight, bias, self.eps).to(x.dtype)


def normalization(channels: int, num_groups: int = 32, eps: float = 1e-5) -> GroupNorm32:
    """guided-diffusion's ``normalization(channels)``: 32 groups unless told otherwise."""
    if channels % num_groups:
        raise ValueError(f"{channels} channels cannot be split into {num_groups} groups")
    return GroupNorm32(num_groups, channels, eps=eps)


def norm_silu(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """SiLU(norm(x)) with the parameters of ``norm``, through the (possibly fused) kernel."""
    return group_norm_silu(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
