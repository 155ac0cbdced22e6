"""The VQGAN tokenizer of official ``nets/vqgan_tokenizer.py`` (taming VQGAN without attention).

Encoder: conv3×3 (no bias); per level ``num_res_blocks`` ResBlocks, then 2×2 average pooling
after every level but the last; ``num_res_blocks`` more ResBlocks; GN, swish, conv1×1 (bias).
Decoder: conv3×3 (bias); ``num_res_blocks`` ResBlocks; per level from the last: ResBlocks, then
for levels > 0 a 2× nearest upsample and conv3×3; GN, swish, conv3×3 → 3.
ResBlock: GN → swish → conv → GN → swish → conv, plus the official shortcut *quirk*: when the
channels change, a 1×1 conv is applied to the block's own output, h + W h, not to its input.
GroupNorm: 32 groups (fewer when channels are few), eps 1e-6 (Flax defaults). Pixels in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

GN_EPS = 1e-6


@dataclass(frozen=True)
class VQGANConfig:
    """Official 256 px tokenizer by default (f = 16, 1024 codes of dim 256)."""

    filters: int = 128
    channel_multipliers: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    embedding_dim: int = 256
    codebook_size: int = 1024
    groups: int = 32
    commitment_cost: float = 0.25
    entropy_loss_ratio: float = 0.1
    entropy_temperature: float = 0.01

    def __post_init__(self) -> None:
        if not self.channel_multipliers or min(self.channel_multipliers) < 1:
            raise ValueError("tokenizer.channel_multipliers must be positive integers")
        for name in ("filters", "num_res_blocks", "embedding_dim", "codebook_size", "groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"tokenizer.{name} must be at least 1, got {getattr(self, name)}")
        for c in self.channels:
            if c % self.group_count(c):
                raise ValueError(f"tokenizer: {c} channels do not split into GroupNorm groups")

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.filters * m for m in self.channel_multipliers)

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channel_multipliers) - 1)

    def group_count(self, channels: int) -> int:
        return math.gcd(self.groups, channels)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def group_norm(cfg: VQGANConfig, channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(cfg.group_count(channels), channels, eps=GN_EPS)


class ResBlock(nn.Module):
    def __init__(self, cfg: VQGANConfig, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1 = group_norm(cfg, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm2 = group_norm(cfg, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(cout, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        if self.shortcut is not None:  # the official quirk: the 1×1 conv sees h, not x
            return h + self.shortcut(h)
        return x + h


def res_blocks(cfg: VQGANConfig, cin: int, cout: int) -> nn.ModuleList:
    return nn.ModuleList(
        ResBlock(cfg, cin if i == 0 else cout, cout) for i in range(cfg.num_res_blocks)
    )


class Encoder(nn.Module):
    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        chans = cfg.channels
        self.conv_in = nn.Conv2d(3, cfg.filters, 3, padding=1, bias=False)
        prev, levels = cfg.filters, []
        for c in chans:
            levels.append(res_blocks(cfg, prev, c))
            prev = c
        self.levels = nn.ModuleList(levels)
        self.mid = res_blocks(cfg, prev, prev)
        self.norm_out = group_norm(cfg, prev)
        self.conv_out = nn.Conv2d(prev, cfg.embedding_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i, level in enumerate(self.levels):
            for block in level:
                h = block(h)
            if i < len(self.levels) - 1:
                h = F.avg_pool2d(h, 2)
        for block in self.mid:
            h = block(h)
        return self.conv_out(swish(self.norm_out(h)))


class DecoderLevel(nn.Module):
    def __init__(self, cfg: VQGANConfig, cin: int, cout: int, upsample: bool) -> None:
        super().__init__()
        self.blocks = res_blocks(cfg, cin, cout)
        self.upsample_conv = nn.Conv2d(cout, cout, 3, padding=1) if upsample else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        if self.upsample_conv is not None:
            h = self.upsample_conv(F.interpolate(h, scale_factor=2, mode="nearest"))
        return h


class Decoder(nn.Module):
    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        chans = cfg.channels
        self.conv_in = nn.Conv2d(cfg.embedding_dim, chans[-1], 3, padding=1)
        self.mid = res_blocks(cfg, chans[-1], chans[-1])
        prev, levels = chans[-1], []
        for i in reversed(range(len(chans))):
            levels.append(DecoderLevel(cfg, prev, chans[i], upsample=i > 0))
            prev = chans[i]
        self.levels = nn.ModuleList(levels)  # levels[j] is multiplier index L-1-j
        self.norm_out = group_norm(cfg, prev)
        self.conv_out = nn.Conv2d(prev, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for level in self.levels:
            h = level(h)
        return self.conv_out(swish(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Nearest codebook vector in squared L2; straight-through gradients in training."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.empty(cfg.codebook_size, cfg.embedding_dim))
        bound = math.sqrt(3.0 / cfg.embedding_dim)  # variance scaling, fan-in, uniform
        nn.init.uniform_(self.codebook, -bound, bound)

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared distances (M, K) from rows of z (M, D) to every code."""
        return (
            z.pow(2).sum(1, keepdim=True)
            - 2 * z @ self.codebook.t()
            + self.codebook.pow(2).sum(1)[None]
        )

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z_q straight-through (B, D, h, w), ids (B, h, w), distances (B·h·w, K))."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        dist = self.distances(flat)
        ids = dist.argmin(dim=1)
        zq = self.codebook[ids].view(b, h, w, d).permute(0, 3, 1, 2)
        return z + (zq - z).detach(), ids.view(b, h, w), dist

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) → features (B, D, h, w)."""
        return self.codebook[ids].permute(0, 3, 1, 2)


class VQGAN(nn.Module):
    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer(cfg)
        self.decoder = Decoder(cfg)

    def check_image(self, x: torch.Tensor) -> None:
        f = self.config.downsample
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % f or x.shape[3] % f:
            raise ValueError(
                f"images must be (batch, 3, H, W) with H and W multiples of {f}, "
                f"got {tuple(x.shape)}"
            )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, 3, H, W) → codes (B, H/f, W/f)."""
        self.check_image(x)
        return self.quantizer(self.encoder(x))[1]

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) → images clipped to [0, 1]."""
        return self.decoder(self.quantizer.embed(ids)).clamp(0, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the training loss needs: ``recon``, ``z`` (encoder output), ``zq`` (its codes'
        vectors, not straight-through), ``ids`` and the quantizer ``distances``."""
        self.check_image(x)
        z = self.encoder(x)
        zq_st, ids, dist = self.quantizer(z)
        zq = self.quantizer.embed(ids)
        return {"recon": self.decoder(zq_st), "z": z, "zq": zq, "ids": ids, "distances": dist}
