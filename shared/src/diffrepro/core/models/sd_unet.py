"""The text-conditioned latent UNet of Stable Diffusion (diffusers' ``UNet2DConditionModel``).

``unet(sample, timestep, encoder_hidden_states) -> Tensor`` (the raw eps / v prediction), with
diffusers' state-dict keys, so a diffusers ``unet/`` folder loads strictly. The config covers
SD 1.x and 2.x: ``attention_head_dim`` is the number of heads per level (diffusers' misnomer; an
int or one value per level), ``use_linear_projection`` (SD 2.x), ``upcast_attention``,
``cross_attention_dim`` and ``layers_per_block`` / ``transformer_layers_per_block`` as an int or
per level, ``only_cross_attention``. Features outside SD 1.x/2.x (class or added embeddings,
SDXL's nested layer counts, scale-shift resnets, ...) are refused when a config sets them.
``mid_block_only_cross_attention`` is accepted and ignored, as diffusers ignores it for
``UNetMidBlock2DCrossAttn``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from torch import nn

from diffrepro.core.models.pretrained import (
    build_and_load,
    config_from_dict,
    read_config,
    read_weights,
)
from diffrepro.core.models.sd_blocks import Downsample2D, ResnetBlock2D, Upsample2D
from diffrepro.core.nn.embeddings import timestep_embedding
from diffrepro.core.nn.normalization import norm_silu
from diffrepro.core.nn.transformer import Transformer2DModel

DOWN_BLOCKS = ("CrossAttnDownBlock2D", "DownBlock2D")
UP_BLOCKS = ("CrossAttnUpBlock2D", "UpBlock2D")
MID_BLOCKS = ("UNetMidBlock2DCrossAttn", None)


def _per_level(value: int | bool | tuple, n: int, name: str) -> tuple:
    if isinstance(value, tuple):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries for {n} levels")
        if not all(isinstance(v, (int, bool)) for v in value):
            raise ValueError(f"{name} must hold one number per level, got {value}")
        return value
    return (value,) * n


@dataclass(frozen=True)
class UNet2DConditionConfig:
    """diffusers' ``UNet2DConditionModel`` config (same names and defaults)."""

    sample_size: int | tuple[int, int] | None = None
    in_channels: int = 4
    out_channels: int = 4
    center_input_sample: bool = False
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    mid_block_type: str | None = "UNetMidBlock2DCrossAttn"
    up_block_types: tuple[str, ...] = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
    only_cross_attention: bool | tuple[bool, ...] = False
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int | tuple[int, ...] = 2
    downsample_padding: int = 1
    mid_block_scale_factor: float = 1.0
    dropout: float = 0.0
    act_fn: str = "silu"
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    cross_attention_dim: int | tuple[int, ...] = 1280
    transformer_layers_per_block: int | tuple[int, ...] = 1
    attention_head_dim: int | tuple[int, ...] = 8
    use_linear_projection: bool = False
    upcast_attention: bool = False
    conv_in_kernel: int = 3
    conv_out_kernel: int = 3

    UNSUPPORTED = {
        "num_attention_heads": None,
        "dual_cross_attention": False,
        "class_embed_type": None,
        "num_class_embeds": None,
        "addition_embed_type": None,
        "addition_time_embed_dim": None,
        "projection_class_embeddings_input_dim": None,
        "class_embeddings_concat": False,
        "encoder_hid_dim": None,
        "encoder_hid_dim_type": None,
        "resnet_time_scale_shift": "default",
        "resnet_skip_time_act": False,
        "resnet_out_scale_factor": 1.0,
        "time_embedding_type": "positional",
        "time_embedding_dim": None,
        "time_embedding_act_fn": None,
        "timestep_post_act": None,
        "time_cond_proj_dim": None,
        "attention_type": "default",
        "cross_attention_norm": None,
        "reverse_transformer_layers_per_block": None,
    }

    def __post_init__(self) -> None:
        n = len(self.block_out_channels)
        if len(self.down_block_types) != n or len(self.up_block_types) != n:
            raise ValueError(f"need {n} down and up block types for {n} block_out_channels")
        for kind, allowed in (
            (self.down_block_types, DOWN_BLOCKS),
            (self.up_block_types, UP_BLOCKS),
        ):
            bad = [t for t in kind if t not in allowed]
            if bad:
                raise ValueError(f"unsupported block types {bad} (supported: {allowed})")
        if self.mid_block_type not in MID_BLOCKS:
            raise ValueError(f"unsupported mid_block_type {self.mid_block_type!r}")
        if self.act_fn not in ("silu", "swish"):
            raise ValueError(f"act_fn {self.act_fn!r} is not supported (only silu)")
        for name in (
            "attention_head_dim",
            "cross_attention_dim",
            "layers_per_block",
            "transformer_layers_per_block",
            "only_cross_attention",
        ):
            _per_level(getattr(self, name), n, name)
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(f"block_out_channels must be multiples of {self.norm_num_groups}")

    def levels(self, name: str) -> tuple:
        """A per-level setting as a tuple of length ``len(block_out_channels)``."""
        return _per_level(getattr(self, name), len(self.block_out_channels), name)


class TimestepEmbedding(nn.Module):
    """``linear_2(silu(linear_1(emb)))``."""

    def __init__(self, dim_in: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(dim_in, dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(emb)))


class DownBlock(nn.Module):
    """``CrossAttnDownBlock2D`` (with attentions) or ``DownBlock2D`` (without)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        temb: int,
        *,
        layers: int,
        downsample: bool,
        attention: dict | None,
        groups: int,
        eps: float,
        dropout: float,
        padding: int,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                c_in if i == 0 else c_out, c_out, temb, groups=groups, eps=eps, dropout=dropout
            )
            for i in range(layers)
        )
        self.attentions = nn.ModuleList(
            [Transformer2DModel(c_out, groups=groups, **attention) for _ in range(layers)]
            if attention is not None
            else []
        )
        self.downsamplers = nn.ModuleList(
            [Downsample2D(c_out, padding=padding)] if downsample else []
        )

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions:
                x = self.attentions[i](x, context)
            skips.append(x)
        for down in self.downsamplers:
            x = down(x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """``CrossAttnUpBlock2D`` or ``UpBlock2D``: each resnet takes ``cat([x, skip])``."""

    def __init__(
        self,
        c_prev: int,
        c_out: int,
        skip_channels: list[int],
        temb: int,
        *,
        upsample: bool,
        attention: dict | None,
        groups: int,
        eps: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                (c_prev if i == 0 else c_out) + skip,
                c_out,
                temb,
                groups=groups,
                eps=eps,
                dropout=dropout,
            )
            for i, skip in enumerate(skip_channels)
        )
        self.attentions = nn.ModuleList(
            [Transformer2DModel(c_out, groups=groups, **attention) for _ in skip_channels]
            if attention is not None
            else []
        )
        self.upsamplers = nn.ModuleList([Upsample2D(c_out)] if upsample else [])

    def forward(
        self,
        x: torch.Tensor,
        skips: list[torch.Tensor],
        temb: torch.Tensor,
        context: torch.Tensor,
        output_size: tuple[int, int] | None,
    ) -> torch.Tensor:
        skips = list(skips)  # popped below; the caller's list stays whole (recomputation)
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
            if self.attentions:
                x = self.attentions[i](x, context)
        for up in self.upsamplers:
            x = up(x, output_size)
        return x


class MidBlockCrossAttn(nn.Module):
    """resnet, transformer, resnet (``UNetMidBlock2DCrossAttn``)."""

    def __init__(
        self,
        channels: int,
        temb: int,
        *,
        attention: dict,
        groups: int,
        eps: float,
        dropout: float,
        output_scale_factor: float,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                channels,
                channels,
                temb,
                groups=groups,
                eps=eps,
                dropout=dropout,
                output_scale_factor=output_scale_factor,
            )
            for _ in range(2)
        )
        self.attentions = nn.ModuleList([Transformer2DModel(channels, groups=groups, **attention)])

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x, temb)
        return self.resnets[1](self.attentions[0](x, context), temb)


class UNet2DConditionModel(nn.Module):
    """``forward(sample, timestep, encoder_hidden_states) -> Tensor`` (same shape as sample)."""

    def __init__(self, config: UNet2DConditionConfig) -> None:
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        chans, n = config.block_out_channels, len(config.block_out_channels)
        temb = 4 * chans[0]
        common = {
            "groups": config.norm_num_groups,
            "eps": config.norm_eps,
            "dropout": config.dropout,
        }
        heads, context = config.levels("attention_head_dim"), config.levels("cross_attention_dim")
        layers, depth = (
            config.levels("layers_per_block"),
            config.levels("transformer_layers_per_block"),
        )
        only_cross = config.levels("only_cross_attention")

        def attention(level: int, kind: str, *, mid: bool = False) -> dict | None:
            if not kind.startswith("CrossAttn") and not mid:
                return None
            return {
                "heads": heads[level],
                "context_dim": context[level],
                "num_layers": depth[level],
                "use_linear_projection": config.use_linear_projection,
                "only_cross_attention": False if mid else bool(only_cross[level]),
                "upcast_attention": config.upcast_attention,
                "dropout": config.dropout,
            }

        self.conv_in = nn.Conv2d(
            config.in_channels,
            chans[0],
            config.conv_in_kernel,
            padding=(config.conv_in_kernel - 1) // 2,
        )
        self.time_embedding = TimestepEmbedding(chans[0], temb)
        self.down_blocks = nn.ModuleList(
            DownBlock(
                chans[max(i - 1, 0)],
                chans[i],
                temb,
                layers=layers[i],
                downsample=i < n - 1,
                attention=attention(i, kind),
                padding=config.downsample_padding,
                **common,
            )
            for i, kind in enumerate(config.down_block_types)
        )
        self.mid_block = None
        if config.mid_block_type is not None:
            self.mid_block = MidBlockCrossAttn(
                chans[-1],
                temb,
                attention=attention(n - 1, "", mid=True),
                output_scale_factor=config.mid_block_scale_factor,
                **common,
            )
        skip_channels = self._skip_channels()
        self.up_blocks = nn.ModuleList()
        for i, kind in enumerate(config.up_block_types):
            level = n - 1 - i
            count = layers[level] + 1
            block_skips, skip_channels = skip_channels[-count:], skip_channels[:-count]
            self.up_blocks.append(
                UpBlock(
                    chans[min(level + 1, n - 1)],
                    chans[level],
                    block_skips[::-1],
                    temb,
                    upsample=i < n - 1,
                    attention=attention(level, kind),
                    **common,
                )
            )
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, chans[0], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(
            chans[0],
            config.out_channels,
            config.conv_out_kernel,
            padding=(config.conv_out_kernel - 1) // 2,
        )

    def _skip_channels(self) -> list[int]:
        chans, n = self.config.block_out_channels, len(self.config.block_out_channels)
        skips = [chans[0]]
        for i, count in enumerate(self.config.levels("layers_per_block")):
            skips += [chans[i]] * (count + (1 if i < n - 1 else 0))
        return skips

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        position_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``position_features`` (broadcastable to ``conv_in``'s output, e.g. SINE's positional
        encoding) is added to the first feature map; ``None`` is the plain SD UNet."""
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(sample.shape[0])
        temb = self.time_embedding(self._time_features(t).to(sample.dtype))
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        x = self.conv_in(sample)
        if position_features is not None:
            x = x + position_features.to(x.dtype)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = self._block(block, x, temb, encoder_hidden_states)
            skips += block_skips
        if self.mid_block is not None:
            x = self._block(self.mid_block, x, temb, encoder_hidden_states)
        factor = 2 ** (len(self.up_blocks) - 1)
        needs_size = any(s % factor for s in sample.shape[-2:])
        for block in self.up_blocks:
            count = len(block.resnets)
            block_skips, skips = skips[-count:], skips[:-count]
            size = tuple(skips[-1].shape[-2:]) if needs_size and block.upsamplers else None
            x = self._block(block, x, block_skips, temb, encoder_hidden_states, size)
        return self.conv_out(norm_silu(self.conv_norm_out, x))

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of storing them
        (training only): much less activation memory for about one extra forward pass. An
        attention hook set on the model sees each training step's maps twice."""
        self.gradient_checkpointing = enabled

    def _block(self, block: nn.Module, *args):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def _time_features(self, t: torch.Tensor) -> torch.Tensor:
        return timestep_embedding(
            t,
            self.config.block_out_channels[0],
            cos_first=self.config.flip_sin_to_cos,
            freq_shift=self.config.freq_shift,
        )

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike,
        *,
        dtype: torch.dtype | None = torch.float32,
        variant: str | None = None,
    ) -> UNet2DConditionModel:
        """Load a diffusers ``unet/`` folder (conv or linear ``proj_in``/``proj_out`` weights)."""
        raw = read_config(folder)
        config = config_from_dict(UNet2DConditionConfig, raw, source=f"{folder}/config.json")
        state, source = read_weights(folder, ("diffusion_pytorch_model",), variant=variant)
        state = {
            k: fit_projection_weight(k, v, config.use_linear_projection) for k, v in state.items()
        }
        return build_and_load(lambda: cls(config), state, dtype=dtype, source=source)


def fit_projection_weight(key: str, tensor: torch.Tensor, linear: bool) -> torch.Tensor:
    """Accept ``proj_in``/``proj_out`` weights stored as [C, C, 1, 1] or [C, C] either way."""
    if not key.endswith(("proj_in.weight", "proj_out.weight")):
        return tensor
    if linear and tensor.ndim == 4:
        return tensor[:, :, 0, 0]
    if not linear and tensor.ndim == 2:
        return tensor[:, :, None, None]
    return tensor
