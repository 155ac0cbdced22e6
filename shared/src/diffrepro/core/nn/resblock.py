"""guided-diffusion's ResBlock, with scale-shift norm and optional 2× up/down sampling.

Parameter names match the official module tree::

    in_layers   = [GroupNorm32, SiLU, Conv2d 3×3]
    h_upd/x_upd = Upsample/Downsample without conv (when up or down)
    emb_layers  = [SiLU, Linear(emb_channels, out or 2*out)]
    out_layers  = [GroupNorm32, SiLU, Dropout, zero-initialised Conv2d 3×3]
    skip_connection = Identity | Conv2d 1×1 | Conv2d 3×3 (use_conv)

``h = out_layers(norm(h) * (1 + scale) + shift)`` with ``scale, shift = emb_layers(emb)`` when
``use_scale_shift_norm``, otherwise ``out_layers(h + emb_layers(emb))``. Both norm+SiLU pairs go
through :func:`norm_silu` (the fused kernel when active). Papers that condition differently
(e.g. VIDM's positional group norm) subclass and override :meth:`ResBlock.conditioned_norm_silu`.
"""

from __future__ import annotations

import torch
from torch import nn

from diffrepro.core.nn.normalization import norm_silu, normalization
from diffrepro.core.nn.resample import Downsample, Upsample
from diffrepro.core.nn.zero import zero_module


class TimestepBlock(nn.Module):
    """Marker base: a block whose forward is ``forward(x, emb)`` (emb = timestep embedding)."""


class ResBlock(TimestepBlock):
    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float = 0.0,
        out_channels: int | None = None,
        *,
        use_conv: bool = False,
        use_scale_shift_norm: bool = False,
        up: bool = False,
        down: bool = False,
        num_groups: int = 32,
    ) -> None:
        super().__init__()
        if up and down:
            raise ValueError("a ResBlock samples up or down, not both")
        self.out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        out = self.out_channels
        self.in_layers = nn.Sequential(
            normalization(channels, num_groups), nn.SiLU(), nn.Conv2d(channels, out, 3, padding=1)
        )
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out if use_scale_shift_norm else out)
        )
        self.out_layers = nn.Sequential(
            normalization(out, num_groups),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zero_module(nn.Conv2d(out, out, 3, padding=1)),
        )
        self.skip_connection: nn.Module
        if out == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(
                channels, out, 3 if use_conv else 1, padding=1 if use_conv else 0
            )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = norm_silu(self.in_layers[0], x)
        h, x = self.h_upd(h), self.x_upd(x)
        h = self.in_layers[2](h)
        h = self.conditioned_norm_silu(h, emb)
        h = self.out_layers[3](self.out_layers[2](h))
        return self.skip_connection(x) + h

    def conditioned_norm_silu(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """SiLU of the output norm of ``h`` conditioned on ``emb`` (AdaGN or additive)."""
        emb_out = self.emb_layers(emb).to(h.dtype)[..., None, None]
        norm = self.out_layers[0]
        if not self.use_scale_shift_norm:
            return norm_silu(norm, h + emb_out)
        scale, shift = emb_out.chunk(2, dim=1)
        return torch.nn.functional.silu(norm(h) * (1 + scale) + shift)
