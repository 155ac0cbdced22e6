"""CLIP text and vision encoders with transformers' parameter names (loadable without it).

- :class:`CLIPTextModel` (``model(input_ids) -> last_hidden_state`` (B, L, hidden)): token +
  position embeddings, pre-LN transformer layers with a causal mask, final LayerNorm. No
  padding mask, as Stable Diffusion calls it. Keys are transformers v5's (no ``text_model.``);
  v4 folders (``text_model.`` prefix, a stray ``position_ids`` buffer) and full ``CLIPModel``
  folders load too.
- :class:`CLIPVisionModel` (``model(pixel_values) -> image_embeds`` (B, projection_dim)) is
  transformers' ``CLIPVisionModelWithProjection``: class token + patch embeddings,
  ``pre_layrnorm`` (sic), the same layers without a mask, ``post_layernorm`` of the class token,
  ``visual_projection``. Loads ``CLIPVisionModelWithProjection`` and ``CLIPModel`` folders.
  Pixels are expected already resized to ``image_size`` and normalised with
  :data:`CLIP_MEAN` / :data:`CLIP_STD` (see :func:`normalize_for_clip`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from diffrepro.core.attention import attention
from diffrepro.core.models.pretrained import (
    build_and_load,
    config_from_dict,
    read_config,
    read_weights,
    strip_prefix,
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ACTIVATIONS = {
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}
_WEIGHT_STEMS = ("model", "pytorch_model")


def _check_encoder(hidden_size: int, heads: int, act: str) -> None:
    if hidden_size % heads:
        raise ValueError(f"hidden_size {hidden_size} is not divisible by {heads} heads")
    if act not in ACTIVATIONS:
        raise ValueError(f"hidden_act {act!r} is not one of {sorted(ACTIVATIONS)}")


@dataclass(frozen=True)
class CLIPTextConfig:
    """transformers' ``CLIPTextConfig`` fields that shape the network (same defaults)."""

    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    projection_dim: int = 512

    def __post_init__(self) -> None:
        _check_encoder(self.hidden_size, self.num_attention_heads, self.hidden_act)


@dataclass(frozen=True)
class CLIPVisionConfig:
    """transformers' ``CLIPVisionConfig`` fields that shape the network (same defaults)."""

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 32
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    projection_dim: int = 512

    def __post_init__(self) -> None:
        _check_encoder(self.hidden_size, self.num_attention_heads, self.hidden_act)
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of {self.patch_size}")


class CLIPAttention(nn.Module):
    """Multi-head attention with biased q/k/v/out projections (``self_attn`` in transformers)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, c // self.heads).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        out = attention(q, k, v, bias=bias)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, c))


class CLIPMLP(nn.Module):
    def __init__(self, width: int, hidden: int, act: str) -> None:
        super().__init__()
        self.act = ACTIVATIONS[act]
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    """Pre-LN block: ``x + attn(ln1 x)``, then ``x + mlp(ln2 x)``."""

    def __init__(self, config: CLIPTextConfig | CLIPVisionConfig) -> None:
        super().__init__()
        width, eps = config.hidden_size, config.layer_norm_eps
        self.self_attn = CLIPAttention(width, config.num_attention_heads)
        self.layer_norm1 = nn.LayerNorm(width, eps=eps)
        self.mlp = CLIPMLP(width, config.intermediate_size, config.hidden_act)
        self.layer_norm2 = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), bias)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, config: CLIPTextConfig | CLIPVisionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers)
        )

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, bias)
        return x


def _embedding(num: int, dim: int, std: float = 0.02) -> nn.Embedding:
    """An embedding table initialised uniformly with standard deviation ``std``.

    Not ``normal_``: on the meta device (where loading builds modules) it imports
    torch._dynamo, several seconds, once per process.
    """
    bound = std * 3**0.5
    return nn.Embedding(num, dim, _weight=torch.empty(num, dim).uniform_(-bound, bound))


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.token_embedding = _embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = _embedding(config.max_position_embeddings, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.token_embedding(input_ids) + self.position_embedding(positions)


class CLIPTextModel(nn.Module):
    """CLIP text tower; ``forward(input_ids) -> last_hidden_state``."""

    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = CLIPTextEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[1]
        if n > self.config.max_position_embeddings:
            raise ValueError(f"{n} tokens exceed max_position_embeddings")
        x = self.embeddings(input_ids)
        causal = torch.full((n, n), float("-inf"), dtype=x.dtype, device=x.device).triu(1)
        return self.final_layer_norm(self.encoder(x, causal))

    def resize_token_embeddings(self, vocab_size: int) -> None:
        """Grow (or shrink) the token table; new rows copy the mean embedding (TI's usual init)."""
        old = self.embeddings.token_embedding.weight
        new = _embedding(vocab_size, old.shape[1]).to(device=old.device, dtype=old.dtype)
        with torch.no_grad():
            keep = min(vocab_size, old.shape[0])
            new.weight[:keep] = old[:keep]
            new.weight[keep:] = old.mean(dim=0)
        self.embeddings.token_embedding = new

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike,
        *,
        dtype: torch.dtype | None = torch.float32,
        variant: str | None = None,
    ) -> CLIPTextModel:
        """Load a ``CLIPTextModel`` (v4 or v5 keys), a ``CLIPTextModelWithProjection`` (the
        projection is unused) or the text half of a ``CLIPModel`` folder."""
        raw = read_config(folder)
        raw = raw.get("text_config", raw)
        config = config_from_dict(CLIPTextConfig, raw, source=f"{folder}/config.json")
        state, source = read_weights(folder, _WEIGHT_STEMS, variant=variant)
        unused = ("position_ids", "text_projection.weight")  # a buffer; CLIPTextModelWithProjection
        state = {k: v for k, v in state.items() if not k.endswith(unused)}
        if any(k.startswith("vision_model.") for k in state):  # a full CLIPModel
            state = {k: v for k, v in state.items() if k.startswith("text_model.")}
        state = strip_prefix(state, "text_model.")
        return build_and_load(lambda: cls(config), state, dtype=dtype, source=source)


class CLIPVisionEmbeddings(nn.Module):
    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        width, patch = config.hidden_size, config.patch_size
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.patch_embedding = nn.Conv2d(
            config.num_channels, width, patch, stride=patch, bias=False
        )
        num_positions = (config.image_size // patch) ** 2 + 1
        self.position_embedding = _embedding(num_positions, width)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls_token = self.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        return torch.cat([cls_token, patches], dim=1) + self.position_embedding.weight


class CLIPVisionTransformer(nn.Module):
    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        width, eps = config.hidden_size, config.layer_norm_eps
        self.embeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(width, eps=eps)
        self.encoder = CLIPEncoder(config)
        self.post_layernorm = nn.LayerNorm(width, eps=eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The pooled (class-token, post-LayerNorm) output, (B, hidden)."""
        x = self.encoder(self.pre_layrnorm(self.embeddings(pixel_values)))
        return self.post_layernorm(x[:, 0])


class CLIPVisionModel(nn.Module):
    """CLIP image tower with projection; ``forward(pixel_values) -> image_embeds``."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.vision_model = CLIPVisionTransformer(config)
        self.visual_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size, channels = self.config.image_size, self.config.num_channels
        if tuple(pixel_values.shape[1:]) != (channels, size, size):
            raise ValueError(
                f"pixel_values must be (B, {channels}, {size}, {size}), "
                f"got {tuple(pixel_values.shape)}"
            )
        return self.visual_projection(self.vision_model(pixel_values))

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike,
        *,
        dtype: torch.dtype | None = torch.float32,
        variant: str | None = None,
    ) -> CLIPVisionModel:
        """Load a ``CLIPVisionModelWithProjection`` or the image half of a ``CLIPModel`` folder."""
        raw = read_config(folder)
        if "vision_config" in raw:
            raw = {**raw["vision_config"], "projection_dim": raw.get("projection_dim", 512)}
        config = config_from_dict(CLIPVisionConfig, raw, source=f"{folder}/config.json")
        state, source = read_weights(folder, _WEIGHT_STEMS, variant=variant)
        keep = ("vision_model.", "visual_projection.")
        if any(k.startswith(keep) for k in state):
            state = {k: v for k, v in state.items() if k.startswith(keep)}
        state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
        return build_and_load(lambda: cls(config), state, dtype=dtype, source=source)


def normalize_for_clip(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images in [-1, 1] (B, 3, H, W) -> CLIP pixel_values: bicubic resize of the short side to
    ``size``, centre crop, then CLIP's mean/std. Close to, not identical with, CLIPImageProcessor
    (which resizes 8-bit PIL images)."""
    h, w = images.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate((images + 1) / 2, size=(new_h, new_w), mode="bicubic", align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[..., top : top + size, left : left + size].clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
