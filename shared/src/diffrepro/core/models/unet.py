"""The pixel-space UNet of openai/guided-diffusion (ADM), with the official module tree.

Our attribute names are the official ones, so an official checkpoint
(``256x256_diffusion_uncond.pt``, ``ffhq_10m.pt``, ...) loads with the **identity key mapping**:
every key of the published state dict is a key of :class:`UNetModel` with the same shape. The
tree, for reference::

    time_embed.{0,2}          Linear(C, 4C), SiLU, Linear(4C, 4C)
    label_emb                 Embedding(num_classes, 4C)   (class-conditional only)
    input_blocks.0.0          Conv2d(in + cond, C·mult[0], 3)
    input_blocks.k.0          ResBlock (in_layers.{0,2}, emb_layers.1, out_layers.{0,3},
                              skip_connection when the width changes)
    input_blocks.k.1          AttentionBlock (norm, qkv, proj_out) at attention resolutions
    input_blocks.k.0(.op)     down ResBlock, or Downsample conv when not resblock_updown
    middle_block.{0,1,2}      ResBlock, AttentionBlock, ResBlock
    output_blocks.k.{0,1,2}   ResBlock on [h, skip], optional AttentionBlock, then an up
                              ResBlock or Upsample (``.conv``) at the end of a level
    out.{0,2}                 GroupNorm32, SiLU, zero-initialised Conv2d(C·mult[0], out, 3)

``attention_resolutions`` are given in pixels like the official command-line flags ("32,16,8")
and converted to downsampling factors with ``image_size``. A checkpoint saved from a DDP-wrapped
model (keys prefixed ``module.``) is accepted by :func:`load_guided_diffusion`.

Reuse by papers: ``forward(x, t, y=None, *, cond=None, attn_bias=None)`` where ``cond`` is
concatenated to ``x`` on the channel axis (``cond_channels`` extra input channels) and
``attn_bias(height, width)`` returns an additive attention bias for the attention blocks at that
resolution (SDM). The forward is split into :meth:`UNetModel.embed`, :meth:`UNetModel.encode`,
:meth:`UNetModel.middle`, :meth:`UNetModel.decode` and :meth:`UNetModel.output`, so a paper
can override one stage (VIDM fuses a second encoder's features into ``encode``); ``resblock_cls``
is a class attribute a subclass can replace (e.g. a ResBlock with positional group norm).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import torch
from torch import nn

from diffrepro.core.checkpoints import (
    load_checkpoint,
    load_state_dict,
    read_state_dict,
    save_checkpoint,
)
from diffrepro.core.nn import (
    AttentionBlock,
    Downsample,
    ResBlock,
    TimestepEmbedSequential,
    Upsample,
    norm_silu,
    normalization,
    timestep_embedding,
    zero_module,
)

AttentionBias = Callable[[int, int], "torch.Tensor | None"]

# guided-diffusion's ``create_model`` picks channel_mult from image_size when it is not given.
OFFICIAL_CHANNEL_MULT = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
    32: (1, 2, 2, 2),
}


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """guided-diffusion's UNet flags. Defaults are the official ``model_and_diffusion_defaults``.

    ``channel_mult=()`` means the official choice for ``image_size``. ``out_channels`` counts the
    prediction only; ``learn_sigma`` doubles it (second half: the variance interpolation values).
    ``cond_channels`` are extra input channels concatenated to ``x`` (``cond=`` in forward).
    ``num_groups`` is 32 in every official model; tiny models use fewer. ``use_checkpoint``
    recomputes each block's activations in the backward pass (less memory, more compute).
    """

    image_size: int = 64
    in_channels: int = 3
    model_channels: int = 128
    out_channels: int = 3
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16, 8)
    dropout: float = 0.0
    channel_mult: tuple[float, ...] = ()
    num_classes: int | None = None
    num_heads: int = 4
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = True
    resblock_updown: bool = False
    use_new_attention_order: bool = False
    conv_resample: bool = True
    learn_sigma: bool = False
    cond_channels: int = 0
    num_groups: int = 32
    use_checkpoint: bool = False

    def __post_init__(self) -> None:
        if not self.channel_mult:
            if self.image_size not in OFFICIAL_CHANNEL_MULT:
                raise ValueError(
                    f"no default channel_mult for image_size {self.image_size}; set channel_mult"
                )
            object.__setattr__(self, "channel_mult", OFFICIAL_CHANNEL_MULT[self.image_size])
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "attention_resolutions", tuple(self.attention_resolutions))

    @property
    def output_channels(self) -> int:
        return self.out_channels * (2 if self.learn_sigma else 1)

    @property
    def attention_downsample_factors(self) -> tuple[int, ...]:
        return tuple(self.image_size // r for r in self.attention_resolutions)


PRESETS: dict[str, UNetConfig] = {
    # 256x256_diffusion_uncond.pt (ADM, ImageNet 256, unconditional), the README's MODEL_FLAGS.
    "imagenet256_uncond": UNetConfig(
        image_size=256,
        model_channels=256,
        num_res_blocks=2,
        attention_resolutions=(32, 16, 8),
        dropout=0.1,
        num_head_channels=64,
        resblock_updown=True,
        use_scale_shift_norm=True,
        learn_sigma=True,
    ),
    # ffhq_10m.pt (P2 weighting, Choi et al.), used by DPS / ADIR for FFHQ 256.
    "ffhq256": UNetConfig(
        image_size=256,
        model_channels=128,
        num_res_blocks=1,
        attention_resolutions=(16,),
        num_heads=4,
        num_head_channels=64,
        resblock_updown=True,
        use_scale_shift_norm=True,
        learn_sigma=True,
    ),
    # A seconds-on-CPU model for tests and demos (16x16 images, ~0.2 M parameters).
    "tiny": UNetConfig(
        image_size=16,
        model_channels=16,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(8,),
        num_heads=2,
        resblock_updown=True,
        num_groups=4,
    ),
}


def unet_preset(name: str, **overrides) -> UNetConfig:
    """A named preset (``imagenet256_uncond``, ``ffhq256``, ``tiny``), optionally overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown UNet preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)


class UNetModel(nn.Module):
    resblock_cls: type[ResBlock] = ResBlock

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.model_channels
        emb_dim = 4 * c
        self.time_embed = nn.Sequential(
            nn.Linear(c, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        if config.num_classes is not None:
            self.label_emb = nn.Embedding(config.num_classes, emb_dim)
        ch = int(config.channel_mult[0] * c)
        first = nn.Conv2d(config.in_channels + config.cond_channels, ch, 3, padding=1)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(first)])
        skip_channels = [ch]
        ds = 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                layers: list[nn.Module] = [self._resblock(ch, int(mult * c))]
                ch = int(mult * c)
                if ds in config.attention_downsample_factors:
                    layers.append(self._attention(ch, config.num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(config.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(self._downsample(ch)))
                skip_channels.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(
            self._resblock(ch, ch), self._attention(ch, config.num_heads), self._resblock(ch, ch)
        )
        heads_up = (
            config.num_heads if config.num_heads_upsample == -1 else config.num_heads_upsample
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(config.num_res_blocks + 1):
                layers = [self._resblock(ch + skip_channels.pop(), int(mult * c))]
                ch = int(mult * c)
                if ds in config.attention_downsample_factors:
                    layers.append(self._attention(ch, heads_up))
                if level and i == config.num_res_blocks:
                    layers.append(self._upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(
            normalization(ch, config.num_groups),
            nn.SiLU(),
            zero_module(nn.Conv2d(ch, config.output_channels, 3, padding=1)),
        )

    # -- construction helpers ------------------------------------------------------------------
    def _resblock(self, channels: int, out_channels: int, **updown: bool) -> ResBlock:
        cfg = self.config
        return self.resblock_cls(
            channels,
            4 * cfg.model_channels,
            cfg.dropout,
            out_channels,
            use_scale_shift_norm=cfg.use_scale_shift_norm,
            num_groups=cfg.num_groups,
            **updown,
        )

    def _attention(self, channels: int, num_heads: int) -> AttentionBlock:
        cfg = self.config
        return AttentionBlock(
            channels,
            num_heads,
            cfg.num_head_channels,
            use_new_attention_order=cfg.use_new_attention_order,
            num_groups=cfg.num_groups,
        )

    def _downsample(self, ch: int) -> nn.Module:
        if self.config.resblock_updown:
            return self._resblock(ch, ch, down=True)
        return Downsample(ch, self.config.conv_resample)

    def _upsample(self, ch: int) -> nn.Module:
        if self.config.resblock_updown:
            return self._resblock(ch, ch, up=True)
        return Upsample(ch, self.config.conv_resample)

    # -- forward, in stages ----------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        cond: torch.Tensor | None = None,
        attn_bias: AttentionBias | None = None,
    ) -> torch.Tensor:
        """The raw network output for noisy images ``x`` (B, C, H, W) at timesteps ``t`` (B,)."""
        self.check_input(x, cond)
        emb = self.embed(t, y, batch=x.shape[0])
        h = x if cond is None else torch.cat([x, cond.to(x.dtype)], dim=1)
        h, skips = self.encode(h, emb, attn_bias)
        h = self.middle(h, emb, attn_bias)
        h = self.decode(h, skips, emb, attn_bias)
        return self.output(h)

    def embed(
        self, t: torch.Tensor, y: torch.Tensor | None = None, *, batch: int | None = None
    ) -> torch.Tensor:
        """The timestep (+ class) embedding, (B, 4·model_channels)."""
        weight = next(self.time_embed.parameters())
        t = torch.as_tensor(t, device=weight.device)
        if t.ndim == 0:
            t = t.expand(batch or 1)
        dtype = weight.dtype
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels).to(dtype))
        if self.config.num_classes is not None:
            if y is None:
                raise ValueError("this UNet is class-conditional: pass class labels y")
            emb = emb + self.label_emb(y)
        elif y is not None:
            raise ValueError("this UNet is unconditional but class labels y were given")
        return emb

    def encode(
        self, h: torch.Tensor, emb: torch.Tensor, attn_bias: AttentionBias | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the input blocks; returns the last features and every block's output (the skips)."""
        skips = []
        for block in self.input_blocks:
            h = self._run(block, h, emb, attn_bias)
            skips.append(h)
        return h, skips

    def decode(
        self,
        h: torch.Tensor,
        skips: list[torch.Tensor],
        emb: torch.Tensor,
        attn_bias: AttentionBias | None = None,
    ) -> torch.Tensor:
        """Run the output blocks, each on ``[h, skip]``, popping ``skips`` last-in first-out.

        The list is emptied, so each skip is freed as soon as its block has used it (as in
        diffusers; a copy kept here would hold every skip to the end of the forward)."""
        if len(skips) != len(self.output_blocks):
            raise ValueError(f"expected {len(self.output_blocks)} skips, got {len(skips)}")
        for block in self.output_blocks:
            h = self._run(block, torch.cat([h, skips.pop()], dim=1), emb, attn_bias)
        return h

    def middle(
        self, h: torch.Tensor, emb: torch.Tensor, attn_bias: AttentionBias | None = None
    ) -> torch.Tensor:
        return self._run(self.middle_block, h, emb, attn_bias)

    def output(self, h: torch.Tensor) -> torch.Tensor:
        return self.out[2](norm_silu(self.out[0], h))

    def _run(
        self, block: nn.Module, h: torch.Tensor, emb: torch.Tensor, attn_bias: AttentionBias | None
    ):
        if self.config.use_checkpoint and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(block, h, emb, attn_bias, use_reentrant=False)
        return block(h, emb, attn_bias)

    def check_input(self, x: torch.Tensor, cond: torch.Tensor | None) -> None:
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"expected input (B, {cfg.in_channels}, H, W), got {tuple(x.shape)}")
        factor = 2 ** (len(cfg.channel_mult) - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"image height and width must be multiples of {factor}, got {tuple(x.shape[-2:])}"
            )
        got = 0 if cond is None else cond.shape[1]
        if got != cfg.cond_channels:
            raise ValueError(
                f"this UNet takes {cfg.cond_channels} conditioning channels, got {got}"
            )


def load_guided_diffusion(path: str | os.PathLike, config: UNetConfig) -> UNetModel:
    """A :class:`UNetModel` with the weights of an official guided-diffusion checkpoint.

    The key mapping is the identity (a leading ``module.`` from DDP is dropped); fp16 weights
    are cast to the model's float32.
    """
    state = read_state_dict(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = UNetModel(config)
    load_state_dict(model, state, source=str(path))
    return model


def save_unet(path: str | os.PathLike, model: UNetModel) -> None:
    """Save weights and config in our safetensors format (see :func:`load_unet`)."""
    save_checkpoint(path, model, model.config)


def load_unet(path: str | os.PathLike) -> UNetModel:
    """A :class:`UNetModel` rebuilt from a file written by :func:`save_unet`."""
    state, config = load_checkpoint(path)
    try:
        cfg = UNetConfig(**config)
    except TypeError as err:
        raise ValueError(f"{path} does not hold a UNetConfig: {err}") from None
    model = UNetModel(cfg)
    load_state_dict(model, state, source=str(path))
    return model
