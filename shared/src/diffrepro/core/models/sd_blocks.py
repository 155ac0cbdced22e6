"""Convolutional blocks of the Stable Diffusion UNet and VAE, with diffusers' parameter names.

These differ from the ADM blocks of :mod:`diffrepro.core.nn` in names (``norm1``/``conv1``/
``time_emb_proj``/``norm2``/``conv2``/``conv_shortcut``), in the additive time embedding and in
the VAE's downsampling (stride-2 conv without padding after a right/bottom zero pad), so that
diffusers state dicts load with identical keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffrepro.core.nn.normalization import norm_silu


class ResnetBlock2D(nn.Module):
    """diffusers' ``ResnetBlock2D`` (``time_embedding_norm="default"``, ``pre_norm``).

    ``temb_channels=None`` drops ``time_emb_proj`` (the VAE's resnets).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int | None,
        *,
        groups: int,
        eps: float,
        dropout: float = 0.0,
        output_scale_factor: float = 1.0,
    ) -> None:
        super().__init__()
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = (
            None if temb_channels is None else nn.Linear(temb_channels, out_channels)
        )
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(norm_silu(self.norm1, x))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(norm_silu(self.norm2, h)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return (shortcut + h) / self.output_scale_factor


class Downsample2D(nn.Module):
    """3×3 stride-2 conv; ``padding=0`` first pads right/bottom by one (the VAE's layout)."""

    def __init__(self, channels: int, *, padding: int = 1) -> None:
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest 2× (or to ``output_size``) then a 3×3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        if output_size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=output_size, mode="nearest")
        return self.conv(x)
