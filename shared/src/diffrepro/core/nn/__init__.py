"""UNet building blocks (guided-diffusion parameter names), the SD transformer blocks
(nn/transformer.py, diffusers parameter names), LoRA and EMA.

One concept per file; everything public is re-exported here.
"""

from diffrepro.core.nn.ema import EMA
from diffrepro.core.nn.embeddings import timestep_embedding
from diffrepro.core.nn.lora import (
    LoRAConv,
    LoRALayer,
    LoRALinear,
    apply_lora,
    lora_layers,
    lora_parameters,
    mark_only_lora_trainable,
    merge_lora,
    unmerge_lora,
    wrap_lora,
)
from diffrepro.core.nn.normalization import GroupNorm32, norm_silu, normalization
from diffrepro.core.nn.resample import Downsample, Upsample
from diffrepro.core.nn.resblock import ResBlock, TimestepBlock
from diffrepro.core.nn.self_attention import AttentionBlock
from diffrepro.core.nn.sequential import TimestepEmbedSequential
from diffrepro.core.nn.transformer import (
    GEGLU,
    BasicTransformerBlock,
    CrossAttention,
    FeedForward,
    Transformer2DModel,
)
from diffrepro.core.nn.zero import zero_module

__all__ = [
    "EMA",
    "GEGLU",
    "AttentionBlock",
    "BasicTransformerBlock",
    "CrossAttention",
    "Downsample",
    "FeedForward",
    "GroupNorm32",
    "LoRAConv",
    "LoRALayer",
    "LoRALinear",
    "ResBlock",
    "TimestepBlock",
    "TimestepEmbedSequential",
    "Transformer2DModel",
    "Upsample",
    "apply_lora",
    "lora_layers",
    "lora_parameters",
    "mark_only_lora_trainable",
    "merge_lora",
    "norm_silu",
    "normalization",
    "timestep_embedding",
    "unmerge_lora",
    "wrap_lora",
    "zero_module",
]
