"""The unconditional pixel UNet of diffusers (``UNet2DModel``: google/ddpm-*, DDPM pipelines).

``unet(sample, timestep) -> Tensor`` with diffusers' state-dict keys, so a diffusers ``unet/``
folder (``config.json`` + ``diffusion_pytorch_model.safetensors``) loads strictly. Blocks:
``DownBlock2D`` / ``AttnDownBlock2D``, ``UNetMidBlock2D`` (optional attention), ``UpBlock2D`` /
``AttnUpBlock2D``; resnets are :class:`~diffrepro.core.models.sd_blocks.ResnetBlock2D`
(``resnet_time_scale_shift="default"``). The attention is diffusers' ``Attention`` as these
blocks build it: GroupNorm, ``to_q``/``to_k``/``to_v``/``to_out.0`` linears over the H·W tokens,
residual, division by ``rescale_output_factor``; heads = channels // ``attention_head_dim``
(one head when it is None). Checkpoints in the deprecated attention layout (``query``, ``key``,
``value``, ``proj_attn``, as in the converted google/ddpm weights) are renamed on load.
Not modelled (refused when a config sets them): Fourier time embeddings, class embeddings,
resnet up/down sampling, skip blocks, scale-shift resnets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from diffrepro.core.attention import attention
from diffrepro.core.models.pretrained import (
    build_and_load,
    config_from_dict,
    read_config,
    read_weights,
)
from diffrepro.core.models.sd_blocks import Downsample2D, ResnetBlock2D, Upsample2D
from diffrepro.core.models.sd_unet import TimestepEmbedding
from diffrepro.core.nn.embeddings import timestep_embedding
from diffrepro.core.nn.normalization import norm_silu

DOWN_BLOCKS = ("DownBlock2D", "AttnDownBlock2D")
UP_BLOCKS = ("UpBlock2D", "AttnUpBlock2D")
DEPRECATED_ATTENTION_KEYS = {
    "query": "to_q",
    "key": "to_k",
    "value": "to_v",
    "proj_attn": "to_out.0",
}


@dataclass(frozen=True)
class UNet2DConfig:
    """diffusers' ``UNet2DModel`` config (same names and defaults)."""

    sample_size: int | tuple[int, int] | None = None
    in_channels: int = 3
    out_channels: int = 3
    center_input_sample: bool = False
    freq_shift: int = 0
    flip_sin_to_cos: bool = True
    down_block_types: tuple[str, ...] = ("DownBlock2D",) + ("AttnDownBlock2D",) * 3
    up_block_types: tuple[str, ...] = ("AttnUpBlock2D",) * 3 + ("UpBlock2D",)
    block_out_channels: tuple[int, ...] = (224, 448, 672, 896)
    layers_per_block: int = 2
    mid_block_scale_factor: float = 1.0
    downsample_padding: int = 1
    dropout: float = 0.0
    act_fn: str = "silu"
    attention_head_dim: int | None = 8
    norm_num_groups: int = 32
    attn_norm_num_groups: int | None = None
    norm_eps: float = 1e-5
    add_attention: bool = True

    UNSUPPORTED = {
        "time_embedding_type": "positional",
        "downsample_type": "conv",
        "upsample_type": "conv",
        "resnet_time_scale_shift": "default",
        "class_embed_type": None,
        "num_class_embeds": None,
        "num_train_timesteps": None,
    }

    def __post_init__(self) -> None:
        n = len(self.block_out_channels)
        if n < 1 or len(self.down_block_types) != n or len(self.up_block_types) != n:
            raise ValueError(f"need {n} down and up block types for {n} block_out_channels")
        for kind, allowed in (
            (self.down_block_types, DOWN_BLOCKS),
            (self.up_block_types, UP_BLOCKS),
        ):
            bad = [t for t in kind if t not in allowed]
            if bad:
                raise ValueError(f"unsupported block types {bad} (supported: {allowed})")
        if self.act_fn not in ("silu", "swish"):
            raise ValueError(f"act_fn {self.act_fn!r} is not supported (only silu)")
        if self.layers_per_block < 1:
            raise ValueError(f"layers_per_block must be >= 1, got {self.layers_per_block}")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(f"block_out_channels must be multiples of {self.norm_num_groups}")
        head = self.attention_head_dim
        if head is not None and any(c % head for c in self.block_out_channels):
            raise ValueError(f"block_out_channels must be multiples of attention_head_dim {head}")


class SpatialSelfAttention(nn.Module):
    """diffusers' ``Attention`` of the UNet2DModel blocks: ``(x + to_out(attn(norm x))) / r``."""

    def __init__(
        self, channels: int, head_dim: int, *, groups: int | None, eps: float, rescale: float = 1.0
    ) -> None:
        super().__init__()
        self.heads = channels // head_dim
        self.rescale_output_factor = rescale
        self.group_norm = None if groups is None else nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        u = x if self.group_norm is None else self.group_norm(x)
        u = u.reshape(b, c, h * w).transpose(1, 2)
        q, k, v = (self._split(proj(u)) for proj in (self.to_q, self.to_k, self.to_v))
        out = attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        out = self.to_out[1](self.to_out[0](out)).transpose(1, 2).reshape(b, c, h, w)
        return (out + x) / self.rescale_output_factor

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, c = t.shape
        return t.view(b, n, self.heads, c // self.heads).transpose(1, 2)


class DownBlock2D(nn.Module):
    """``DownBlock2D`` or ``AttnDownBlock2D``: resnets (each followed by an attention)."""

    def __init__(self, c_in: int, c_out: int, temb: int, *, cfg: UNet2DConfig, attn: bool,
                 downsample: bool) -> None:  # fmt: skip
        super().__init__()
        kw = {"groups": cfg.norm_num_groups, "eps": cfg.norm_eps, "dropout": cfg.dropout}
        self.resnets = nn.ModuleList(
            ResnetBlock2D(c_in if i == 0 else c_out, c_out, temb, **kw)
            for i in range(cfg.layers_per_block)
        )
        self.attentions = nn.ModuleList(
            [_attention(c_out, cfg, cfg.norm_num_groups) for _ in self.resnets] if attn else []
        )
        self.downsamplers = nn.ModuleList(
            [Downsample2D(c_out, padding=cfg.downsample_padding)] if downsample else []
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> tuple[torch.Tensor, list]:
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions:
                x = self.attentions[i](x)
            skips.append(x)
        for down in self.downsamplers:
            x = down(x)
            skips.append(x)
        return x, skips


class UpBlock2D(nn.Module):
    """``UpBlock2D`` or ``AttnUpBlock2D``: each resnet takes ``cat([x, skip])``."""

    def __init__(self, c_prev: int, c_out: int, skip_channels: list[int], temb: int, *,
                 cfg: UNet2DConfig, attn: bool, upsample: bool) -> None:  # fmt: skip
        super().__init__()
        kw = {"groups": cfg.norm_num_groups, "eps": cfg.norm_eps, "dropout": cfg.dropout}
        self.resnets = nn.ModuleList(
            ResnetBlock2D((c_prev if i == 0 else c_out) + skip, c_out, temb, **kw)
            for i, skip in enumerate(skip_channels)
        )
        self.attentions = nn.ModuleList(
            [_attention(c_out, cfg, cfg.norm_num_groups) for _ in self.resnets] if attn else []
        )
        self.upsamplers = nn.ModuleList([Upsample2D(c_out)] if upsample else [])

    def forward(self, x: torch.Tensor, skips: list, temb: torch.Tensor) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
            if self.attentions:
                x = self.attentions[i](x)
        for up in self.upsamplers:
            x = up(x)
        return x


class MidBlock2D(nn.Module):
    """``UNetMidBlock2D``: resnet, (attention,) resnet."""

    def __init__(self, channels: int, temb: int, *, cfg: UNet2DConfig) -> None:
        super().__init__()
        scale = cfg.mid_block_scale_factor
        kw = {"groups": cfg.norm_num_groups, "eps": cfg.norm_eps, "dropout": cfg.dropout}
        self.resnets = nn.ModuleList(
            ResnetBlock2D(channels, channels, temb, output_scale_factor=scale, **kw)
            for _ in range(2)
        )
        groups = cfg.attn_norm_num_groups or cfg.norm_num_groups
        self.attentions = nn.ModuleList(
            [_attention(channels, cfg, groups, rescale=scale)] if cfg.add_attention else []
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x, temb)
        for attn in self.attentions:
            x = attn(x)
        return self.resnets[1](x, temb)


def _attention(channels: int, cfg: UNet2DConfig, groups: int, rescale: float = 1.0):
    head = cfg.attention_head_dim if cfg.attention_head_dim is not None else channels
    return SpatialSelfAttention(channels, head, groups=groups, eps=cfg.norm_eps, rescale=rescale)


class UNet2DModel(nn.Module):
    """``forward(sample, timestep) -> Tensor`` (the raw prediction, ``out_channels`` wide)."""

    def __init__(self, config: UNet2DConfig) -> None:
        super().__init__()
        self.config = config
        chans, n = config.block_out_channels, len(config.block_out_channels)
        temb = 4 * chans[0]
        self.conv_in = nn.Conv2d(config.in_channels, chans[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(chans[0], temb)
        self.down_blocks = nn.ModuleList(
            DownBlock2D(
                chans[max(i - 1, 0)],
                chans[i],
                temb,
                cfg=config,
                attn=kind == "AttnDownBlock2D",
                downsample=i < n - 1,
            )  # fmt: skip
            for i, kind in enumerate(config.down_block_types)
        )
        self.mid_block = MidBlock2D(chans[-1], temb, cfg=config)
        skips = [chans[0]]
        for i in range(n):
            skips += [chans[i]] * (config.layers_per_block + (1 if i < n - 1 else 0))
        self.up_blocks = nn.ModuleList()
        for i, kind in enumerate(config.up_block_types):
            level, count = n - 1 - i, config.layers_per_block + 1
            block_skips, skips = skips[-count:], skips[:-count]
            self.up_blocks.append(
                UpBlock2D(
                    chans[min(level + 1, n - 1)],
                    chans[level],
                    block_skips[::-1],
                    temb,
                    cfg=config,
                    attn=kind == "AttnUpBlock2D",
                    upsample=i < n - 1,
                )  # fmt: skip
            )
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, chans[0], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(chans[0], config.out_channels, 3, padding=1)

    def embed(self, timestep: torch.Tensor | float | int, batch: int) -> torch.Tensor:
        """The time embedding every resnet consumes, (batch, 4·block_out_channels[0])."""
        weight = self.time_embedding.linear_1.weight
        t = torch.as_tensor(timestep, device=weight.device).reshape(-1).expand(batch)
        feats = timestep_embedding(
            t,
            self.config.block_out_channels[0],
            cos_first=self.config.flip_sin_to_cos,
            freq_shift=self.config.freq_shift,
        )
        return self.time_embedding(feats.to(weight.dtype))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float | int) -> torch.Tensor:
        if sample.ndim != 4 or sample.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected input (B, {self.config.in_channels}, H, W), got {tuple(sample.shape)}"
            )
        temb = self.embed(timestep, sample.shape[0])
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb)
            skips += block_skips
        x = self.mid_block(x, temb)
        for block in self.up_blocks:
            count = len(block.resnets)
            block_skips, skips = skips[-count:], skips[:-count]
            x = block(x, block_skips, temb)
        return self.conv_out(norm_silu(self.conv_norm_out, x))

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike,
        *,
        dtype: torch.dtype | None = torch.float32,
        variant: str | None = None,
    ) -> UNet2DModel:
        """Load a diffusers ``UNet2DModel`` folder (either attention key layout)."""
        raw = read_config(folder)
        if raw.get("_class_name", "UNet2DModel") != "UNet2DModel":
            raise ValueError(
                f"{folder}/config.json describes a {raw['_class_name']}, not a UNet2DModel"
            )
        config = config_from_dict(UNet2DConfig, raw, source=f"{folder}/config.json")
        state, source = read_weights(folder, ("diffusion_pytorch_model",), variant=variant)
        return build_and_load(
            lambda: cls(config), rename_deprecated_attention(state), dtype=dtype, source=source
        )


def rename_deprecated_attention(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``...attentions.N.query.weight`` → ``...attentions.N.to_q.weight`` (and key, value,
    proj_attn); other keys unchanged."""
    out = {}
    for key, tensor in state.items():
        parts = key.split(".")
        if len(parts) >= 3 and parts[-2] in DEPRECATED_ATTENTION_KEYS and "attentions" in parts:
            parts[-2] = DEPRECATED_ATTENTION_KEYS[parts[-2]]
            key = ".".join(parts)
        out[key] = tensor
    return out
