"""The time-aware adapter (spec §3.3, a reconstruction: the paper's text is not available).

For the tokens ``h`` (B, N, C) entering one attention block and the embedding ``e_t`` (B, d_e)
that the UNet's resnets consume, with bottleneck width ``r``::

    time fusion   g = W_down LN(h) + 1 (W_e SiLU(e_t))ᵀ                      (B, N, r)
    attention     a = softmax((g W_Q)(g W_K)ᵀ / √r) (g W_V)                   (B, N, r)
    time scaling  s(t) = w_sᵀ SiLU(e_t) + b_s,   w_s = 0, b_s = 0 at init      (B, 1)
    output        h' = AttnBlock(h) + s(t) W_up a

:meth:`TimeAwareAdapter.forward` returns the branch ``s(t) W_up a``; the hooks in
:mod:`~diffrepro.limited_data_ft.model` add it to the block's output. Alternative readings
(all options of :class:`~diffrepro.limited_data_ft.config.AdapterConfig`):

- ``kv_source="features"``: keys and values from the block's own (normalised) features,
  ``k = LN(h) W_K``, ``v = LN(h) W_V`` (W_K, W_V are C → r), queries from ``g``;
- ``scale="vector"``: a FiLM-like per-channel scale ``s(t) ∈ R^{out}`` instead of a scalar;
- ``placement="before_proj"`` (applied by the hook): the branch enters the block before its
  output projection, which by linearity is ``AttnBlock(h) + W_o s(t) W_up a``.

Every weight is stored divided by ``gain`` and multiplied by it in the forward: AdamW's step
does not depend on the gradient's scale, so the stored tensor moves by ``lr`` per step and the
weight itself by ``gain · lr``. This gives the adapter its own learning rate
(``adapter_lr = gain · lr``) inside the core training loop, which has a single one.
Linear maps have no bias (the closed-form count of spec §3.3); the LayerNorm has an affine
(``ln_affine``) with eps 1e-5.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from diffrepro.core.attention import attention

KV_SOURCES = ("fused", "features")
SCALES = ("scalar", "vector")


def adapter_param_count(
    channels: int,
    emb_dim: int,
    rank: int,
    out_channels: int | None = None,
    *,
    kv_source: str = "fused",
    scale: str = "scalar",
    ln_affine: bool = True,
) -> int:
    """Closed form of spec §3.3: ``Cr + d_e r + 3r² + r·out + d_e + 1`` (+ 2C for the LN affine).

    ``kv_source="features"`` replaces ``2r²`` by ``2Cr``; ``scale="vector"`` makes the scale
    ``out·d_e + out`` instead of ``d_e + 1``. ``out`` is C unless the branch enters before an
    output projection of another width."""
    c, d, r = channels, emb_dim, rank
    out = c if out_channels is None else out_channels
    kv = 2 * r * r if kv_source == "fused" else 2 * c * r
    scale_count = d + 1 if scale == "scalar" else out * d + out
    return c * r + d * r + r * r + kv + r * out + scale_count + (2 * c if ln_affine else 0)


class TimeAwareAdapter(nn.Module):
    """``forward(h, e) -> s(t) W_up a`` for tokens ``h`` (B, N, C) and embeddings ``e`` (B, d_e)."""

    def __init__(
        self,
        channels: int,
        emb_dim: int,
        rank: int,
        out_channels: int | None = None,
        *,
        kv_source: str = "fused",
        scale: str = "scalar",
        ln_affine: bool = True,
        gain: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if kv_source not in KV_SOURCES:
            raise ValueError(f"kv_source must be one of {KV_SOURCES}, got {kv_source!r}")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        for name, value in (("channels", channels), ("emb_dim", emb_dim), ("rank", rank)):
            if value < 1:
                raise ValueError(f"adapter {name} must be >= 1, got {value}")
        if not (math.isfinite(gain) and gain > 0):
            raise ValueError(f"adapter gain must be a positive number, got {gain}")
        out = channels if out_channels is None else out_channels
        self.channels, self.emb_dim, self.rank, self.out_channels = channels, emb_dim, rank, out
        self.kv_source, self.scale_kind, self.gain = kv_source, scale, float(gain)
        kv_in = rank if kv_source == "fused" else channels
        shapes = {
            "w_down": (rank, channels),
            "w_time": (rank, emb_dim),
            "w_q": (rank, rank),
            "w_k": (rank, kv_in),
            "w_v": (rank, kv_in),
            "w_up": (out, rank),
        }
        for name, shape in shapes.items():
            bound = 1.0 / math.sqrt(shape[1])  # nn.Linear's default initialisation range
            weight = (torch.rand(shape, generator=generator) * 2 - 1) * bound
            self.register_parameter(name, nn.Parameter(weight / self.gain))
        width = 1 if scale == "scalar" else out
        self.w_scale = nn.Parameter(torch.zeros(width, emb_dim))
        self.b_scale = nn.Parameter(torch.zeros(width))
        self.ln_affine = ln_affine
        if ln_affine:
            self.ln_weight = nn.Parameter(torch.ones(channels) / self.gain)
            self.ln_bias = nn.Parameter(torch.zeros(channels))

    def weight(self, name: str) -> torch.Tensor:
        """The effective tensor ``gain · stored``."""
        return getattr(self, name) * self.gain

    def time_scale(self, e: torch.Tensor) -> torch.Tensor:
        """``s(t) = w_sᵀ SiLU(e_t) + b_s``, shape (B, 1) or (B, out)."""
        return F.linear(F.silu(e), self.weight("w_scale"), self.weight("b_scale"))

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if h.ndim != 3 or h.shape[-1] != self.channels:
            raise ValueError(
                f"adapter expects tokens (B, N, {self.channels}), got {tuple(h.shape)}"
            )
        if e.shape != (h.shape[0], self.emb_dim):
            raise ValueError(
                f"adapter expects embeddings ({h.shape[0]}, {self.emb_dim}), got {tuple(e.shape)}"
            )
        e = e.to(h.dtype)
        ln_w = self.weight("ln_weight") if self.ln_affine else None
        ln_b = self.weight("ln_bias") if self.ln_affine else None
        x = F.layer_norm(h, (self.channels,), ln_w, ln_b, eps=1e-5)
        g = F.linear(x, self.weight("w_down")) + F.linear(F.silu(e), self.weight("w_time"))[:, None]
        source = g if self.kv_source == "fused" else x
        q = F.linear(g, self.weight("w_q"))[:, None]
        k = F.linear(source, self.weight("w_k"))[:, None]
        v = F.linear(source, self.weight("w_v"))[:, None]
        a = attention(q, k, v, scale=1.0 / math.sqrt(self.rank))[:, 0]
        return self.time_scale(e)[:, None, :] * F.linear(a, self.weight("w_up"))

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, emb_dim={self.emb_dim}, rank={self.rank}, "
            f"out={self.out_channels}, kv_source={self.kv_source}, scale={self.scale_kind}, "
            f"gain={self.gain:g}"
        )
