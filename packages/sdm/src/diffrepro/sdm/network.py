"""The SDM generator (spec §4): a U-Net from 7 input channels to a mean and a bounded sigma.

Input = [x (3, known/committed pixels, zeros in the hole), m_0, m_{t-1}, u_{t-1}, τ] where τ is
the schedule position (t-1)/T broadcast as a channel (and also embedded for the ResBlocks).

- Encoder: a 3×3 conv, then per level an ADM ResBlock (core ``ResBlock``, widths
  ``base · 2^level`` capped at ``max_channels``) with uncertainty-guided attention at the
  resolutions in ``attention_resolutions``, and a strided-conv downsample between levels.
- Middle: ResBlock → UGA → ResBlock at the lowest resolution.
- Decoder (StyleGAN2-style): per level, add the encoder skip, two modulated 3×3 convs (UGA at the
  attention resolutions), then nearest upsampling. The style vector is an MLP of the globally
  pooled bottleneck features (MAT's co-modulation without the random z: here randomness enters
  only through the sampling step; documented choice).
- Head: a modulated 1×1 conv without demodulation (StyleGAN2's ToRGB) to 6 channels: 3 mean
  (unbounded; the decoding loop clamps to [-1, 1]) and 3 sigma = s + (1 - s)·sigmoid(·) ∈ [s, 1]
  with the floor s = ``sigma_floor`` (default 0.004 ≈ half an 8-bit bin, 1/255: a smaller σ
  barely raises the likelihood of a correct pixel, while σ → 0 on a wrong one makes the NLL and
  its gradient explode — the demo diverged to NaN without it). Its weights are zero-initialised
  so σ starts near ½ (random σ logits make the first likelihood values swamp the trunk).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from diffrepro.core.nn import Downsample, ResBlock, timestep_embedding
from diffrepro.sdm.attention import UncertaintyGuidedAttention
from diffrepro.sdm.modulated import ModulatedConv2d, StyledConv

IN_CHANNELS = 7


@dataclass(frozen=True)
class NetworkConfig:
    """Width knobs. The paper: 64 channels doubling to 512, UGA at 32² and 16², 512² images."""

    resolution: int = 512
    base_channels: int = 64
    max_channels: int = 512
    levels: int = 6
    attention_resolutions: tuple[int, ...] = (32, 16)
    num_heads: int = 8
    num_groups: int = 32
    style_dim: int = 512
    sigma_floor: float = 0.004  # σ ∈ [sigma_floor, 1]; 0 = the plain sigmoid (may diverge)


class SDMNetwork(nn.Module):
    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        if not 0.0 <= cfg.sigma_floor < 1.0:
            raise ValueError(f"network.sigma_floor must lie in [0, 1), got {cfg.sigma_floor}")
        if cfg.resolution % 2 ** (cfg.levels - 1):
            raise ValueError(f"resolution {cfg.resolution} is not divisible by 2^(levels-1)")
        self.cfg = cfg
        widths = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(cfg.levels)]
        resolutions = [cfg.resolution // 2**i for i in range(cfg.levels)]
        emb = 4 * cfg.base_channels
        self.time_embed = nn.Sequential(
            nn.Linear(cfg.base_channels, emb), nn.SiLU(), nn.Linear(emb, emb)
        )
        self.conv_in = nn.Conv2d(IN_CHANNELS, widths[0], 3, padding=1)

        def uga(width: int, res: int) -> nn.Module | None:
            if res not in cfg.attention_resolutions:
                return None
            return UncertaintyGuidedAttention(width, cfg.num_heads, num_groups=cfg.num_groups)

        self.enc_blocks = nn.ModuleList()
        self.enc_attn = nn.ModuleList()
        self.downs = nn.ModuleList()
        previous = widths[0]
        for i, (width, res) in enumerate(zip(widths, resolutions)):
            self.enc_blocks.append(
                ResBlock(previous, emb, out_channels=width, num_groups=cfg.num_groups)
            )
            self.enc_attn.append(uga(width, res) or nn.Identity())
            if i < cfg.levels - 1:
                self.downs.append(Downsample(width, True))
            previous = width
        bottom = widths[-1]
        self.mid_in = ResBlock(bottom, emb, num_groups=cfg.num_groups)
        self.mid_attn = UncertaintyGuidedAttention(bottom, cfg.num_heads, num_groups=cfg.num_groups)
        self.mid_out = ResBlock(bottom, emb, num_groups=cfg.num_groups)
        self.style = nn.Sequential(
            nn.Linear(bottom, cfg.style_dim), nn.SiLU(), nn.Linear(cfg.style_dim, cfg.style_dim)
        )

        self.dec_convs = nn.ModuleList()
        self.dec_attn = nn.ModuleList()
        for i in reversed(range(cfg.levels)):
            out = widths[i - 1] if i > 0 else widths[0]
            self.dec_convs.append(
                nn.ModuleList(
                    [
                        StyledConv(widths[i], widths[i], cfg.style_dim),
                        StyledConv(widths[i], out, cfg.style_dim),
                    ]
                )
            )
            self.dec_attn.append(uga(widths[i], resolutions[i]) or nn.Identity())
        self.to_out = ModulatedConv2d(widths[0], 6, 1, cfg.style_dim, demodulate=False)
        with torch.no_grad():  # σ starts at sigmoid(0) = ½ everywhere: a tame initial likelihood
            self.to_out.weight[3:].zero_()

    def forward(
        self,
        x: torch.Tensor,
        mask0: torch.Tensor,
        mask: torch.Tensor,
        uncertainty: torch.Tensor,
        tau: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, sigma), each (B, 3, H, W); ``tau`` (B,) is the schedule position in [0, 1)."""
        b, _, height, width = x.shape
        if (height, width) != (self.cfg.resolution, self.cfg.resolution):
            raise ValueError(
                f"the network takes {self.cfg.resolution}² images, got {height}×{width}"
            )
        tau_map = tau.to(x.dtype)[:, None, None, None].expand(b, 1, height, width)
        emb = self.time_embed(timestep_embedding(tau * 1000, self.cfg.base_channels).to(x.dtype))
        h = self.conv_in(torch.cat([x, mask0, mask, uncertainty, tau_map], dim=1))
        skips = []
        for i, (block, attn) in enumerate(zip(self.enc_blocks, self.enc_attn)):
            h = self._attend(attn, block(h, emb), uncertainty)
            skips.append(h)
            if i < len(self.downs):
                h = self.downs[i](h)
        h = self.mid_out(self.mid_attn(self.mid_in(h, emb), uncertainty), emb)
        style = self.style(h.mean(dim=(2, 3)))
        for level, (convs, attn) in enumerate(zip(self.dec_convs, self.dec_attn)):
            h = convs[0](h + skips[-1 - level], style)
            h = convs[1](self._attend(attn, h, uncertainty), style)
            if level < len(self.dec_convs) - 1:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        out = self.to_out(h, style)
        floor = self.cfg.sigma_floor
        return out[:, :3], floor + (1.0 - floor) * torch.sigmoid(out[:, 3:])

    @staticmethod
    def _attend(attn: nn.Module, h: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
        return attn(h, uncertainty) if isinstance(attn, UncertaintyGuidedAttention) else h
