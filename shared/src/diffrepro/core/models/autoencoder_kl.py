"""The KL autoencoder of latent diffusion (diffusers' ``AutoencoderKL``, same parameter names).

``vae.encode(x) -> DiagonalGaussian`` (``.mean``, ``.logvar``, ``.sample(generator)``,
``.mode()``), ``vae.decode(z) -> x``; ``x`` in [-1, 1]. Scaling by ``config.scaling_factor``
(0.18215 for SD 1.x) is the caller's job, as in diffusers (see ``StableDiffusion``).
GroupNorm eps is 1e-6 everywhere; the encoder downsamples with a stride-2 conv after a
right/bottom pad; the mid-block attention is single-head with its own GroupNorm and residual.
Legacy checkpoints naming that attention ``query/key/value/proj_attn`` load too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from diffrepro.core.models.pretrained import (
    build_and_load,
    config_from_dict,
    read_config,
    read_weights,
)
from diffrepro.core.models.sd_blocks import Downsample2D, ResnetBlock2D, Upsample2D
from diffrepro.core.nn.normalization import norm_silu
from diffrepro.core.nn.transformer import CrossAttention

_EPS = 1e-6
_LEGACY_ATTENTION_NAMES = {
    ".query.": ".to_q.",
    ".key.": ".to_k.",
    ".value.": ".to_v.",
    ".proj_attn.": ".to_out.0.",
}


@dataclass(frozen=True)
class AutoencoderKLConfig:
    """diffusers' ``AutoencoderKL`` config (same names and defaults)."""

    in_channels: int = 3
    out_channels: int = 3
    down_block_types: tuple[str, ...] = ("DownEncoderBlock2D",)
    up_block_types: tuple[str, ...] = ("UpDecoderBlock2D",)
    block_out_channels: tuple[int, ...] = (64,)
    layers_per_block: int = 1
    act_fn: str = "silu"
    latent_channels: int = 4
    norm_num_groups: int = 32
    sample_size: int = 32
    scaling_factor: float = 0.18215
    shift_factor: float | None = None
    force_upcast: bool = True
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    mid_block_add_attention: bool = True

    UNSUPPORTED = {"latents_mean": None, "latents_std": None}

    def __post_init__(self) -> None:
        n = len(self.block_out_channels)
        if set(self.down_block_types) != {"DownEncoderBlock2D"} or len(self.down_block_types) != n:
            raise ValueError(f"down_block_types must be {n} x DownEncoderBlock2D")
        if set(self.up_block_types) != {"UpDecoderBlock2D"} or len(self.up_block_types) != n:
            raise ValueError(f"up_block_types must be {n} x UpDecoderBlock2D")
        if self.act_fn not in ("silu", "swish"):
            raise ValueError(f"act_fn {self.act_fn!r} is not supported (only silu)")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(f"block_out_channels must be multiples of {self.norm_num_groups}")


@dataclass
class DiagonalGaussian:
    """The encoder's posterior N(mean, exp(logvar)), logvar clamped to [-30, 20]."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @classmethod
    def from_moments(cls, moments: torch.Tensor) -> DiagonalGaussian:
        mean, logvar = moments.chunk(2, dim=1)
        return cls(mean, logvar.clamp(-30.0, 20.0))

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean


class VAEAttention(CrossAttention):
    """Single-head self-attention over pixels with a GroupNorm in front and a residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__(channels, heads=1, dim_head=channels, bias=True, upcast=True)
        self.group_norm = nn.GroupNorm(groups, channels, eps=_EPS)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        out = super().forward(tokens)
        return out.transpose(1, 2).reshape(b, c, h, w) + x


class MidBlock(nn.Module):
    """resnet, (attention), resnet at the lowest resolution."""

    def __init__(self, channels: int, groups: int, add_attention: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(channels, channels, None, groups=groups, eps=_EPS) for _ in range(2)
        )
        self.attentions = nn.ModuleList([VAEAttention(channels, groups)] if add_attention else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        for attn in self.attentions:
            x = attn(x)
        return self.resnets[1](x)


class EncoderBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, layers: int, groups: int, downsample: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(c_in if i == 0 else c_out, c_out, None, groups=groups, eps=_EPS)
            for i in range(layers)
        )
        self.downsamplers = nn.ModuleList([Downsample2D(c_out, padding=0)] if downsample else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in [*self.resnets, *self.downsamplers]:
            x = layer(x)
        return x


class DecoderBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, layers: int, groups: int, upsample: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(c_in if i == 0 else c_out, c_out, None, groups=groups, eps=_EPS)
            for i in range(layers)
        )
        self.upsamplers = nn.ModuleList([Upsample2D(c_out)] if upsample else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in [*self.resnets, *self.upsamplers]:
            x = layer(x)
        return x


class Encoder(nn.Module):
    def __init__(self, config: AutoencoderKLConfig) -> None:
        super().__init__()
        chans, groups = config.block_out_channels, config.norm_num_groups
        self.conv_in = nn.Conv2d(config.in_channels, chans[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            EncoderBlock(
                chans[max(i - 1, 0)], c, config.layers_per_block, groups, i < len(chans) - 1
            )
            for i, c in enumerate(chans)
        )
        self.mid_block = MidBlock(chans[-1], groups, config.mid_block_add_attention)
        self.conv_norm_out = nn.GroupNorm(groups, chans[-1], eps=_EPS)
        self.conv_out = nn.Conv2d(chans[-1], 2 * config.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        return self.conv_out(norm_silu(self.conv_norm_out, x))


class Decoder(nn.Module):
    def __init__(self, config: AutoencoderKLConfig) -> None:
        super().__init__()
        chans, groups = tuple(reversed(config.block_out_channels)), config.norm_num_groups
        self.conv_in = nn.Conv2d(config.latent_channels, chans[0], 3, padding=1)
        self.mid_block = MidBlock(chans[0], groups, config.mid_block_add_attention)
        self.up_blocks = nn.ModuleList(
            DecoderBlock(
                chans[max(i - 1, 0)], c, config.layers_per_block + 1, groups, i < len(chans) - 1
            )
            for i, c in enumerate(chans)
        )
        self.conv_norm_out = nn.GroupNorm(groups, chans[-1], eps=_EPS)
        self.conv_out = nn.Conv2d(chans[-1], config.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(norm_silu(self.conv_norm_out, x))


class AutoencoderKL(nn.Module):
    """``encode(x) -> DiagonalGaussian``, ``decode(z) -> x``, ``forward(x) -> decode(mode)``."""

    def __init__(self, config: AutoencoderKLConfig) -> None:
        super().__init__()
        self.config = config
        latent = config.latent_channels
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * latent, 2 * latent, 1) if config.use_quant_conv else None
        self.post_quant_conv = nn.Conv2d(latent, latent, 1) if config.use_post_quant_conv else None

    @property
    def downscale_factor(self) -> int:
        """Pixels per latent cell along each side (8 for SD)."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        moments = self.encoder(x)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        return DiagonalGaussian.from_moments(moments)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)

    def forward(
        self,
        x: torch.Tensor,
        *,
        sample_posterior: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike,
        *,
        dtype: torch.dtype | None = torch.float32,
        variant: str | None = None,
    ) -> AutoencoderKL:
        """Load a diffusers ``vae/`` folder (new or legacy attention names)."""
        raw = read_config(folder)
        config = config_from_dict(AutoencoderKLConfig, raw, source=f"{folder}/config.json")
        state, source = read_weights(folder, ("diffusion_pytorch_model",), variant=variant)
        state = {rename_legacy_attention(k): v for k, v in state.items()}
        state = {k: _squeeze_conv_attention(k, v) for k, v in state.items()}
        return build_and_load(lambda: cls(config), state, dtype=dtype, source=source)


def rename_legacy_attention(key: str) -> str:
    """``query/key/value/proj_attn`` (pre-2023 VAE attention) to ``to_q/to_k/to_v/to_out.0``."""
    if ".attentions." not in key:
        return key
    for old, new in _LEGACY_ATTENTION_NAMES.items():
        key = key.replace(old, new)
    return key


def _squeeze_conv_attention(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """1×1-conv q/k/v/out weights (some conversions keep them 4-D) as Linear weights."""
    if ".attentions." in key and key.endswith(".weight") and tensor.ndim == 4:
        return tensor[:, :, 0, 0]
    return tensor
