"""Sinusoidal timestep embedding, in both the ADM and the diffusers conventions.

For ``half = dim // 2`` frequencies ``f_i = max_period ** (-i / (half - freq_shift))`` the
embedding of ``t`` is ``[cos(t f), sin(t f)]`` (``cos_first=True``, guided-diffusion's order and
diffusers' ``flip_sin_to_cos=True``) or ``[sin(t f), cos(t f)]``. guided-diffusion uses
``freq_shift=0``; diffusers calls it ``downscale_freq_shift`` (0 in SD's UNet and the
UNet2DModel default; the converted google/ddpm checkpoints use 1 with sin first).
An odd ``dim`` gets one zero column at the end.
"""

from __future__ import annotations

import math

import torch


def timestep_embedding(
    t: torch.Tensor,
    dim: int,
    *,
    max_period: float = 10000.0,
    cos_first: bool = True,
    freq_shift: float = 0.0,
    scale: float = 1.0,
) -> torch.Tensor:
    """Embed the (B,) timesteps ``t`` (int or float, may be fractional) as (B, dim) float32."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(exponent / (half - freq_shift))
    args = scale * t.float()[:, None] * freqs[None]
    parts = (torch.cos(args), torch.sin(args)) if cos_first else (torch.sin(args), torch.cos(args))
    emb = torch.cat(parts, dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb
