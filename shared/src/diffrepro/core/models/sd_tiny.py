"""A tiny, randomly initialised Stable Diffusion stack for tests and CPU demos.

``tiny_stable_diffusion(seed=0)`` builds, in memory and in well under a second, the same
architecture as SD 1.x at toy widths: a 2-level UNet with cross-attention at both levels
(8 hooked attention layers), a 3-level VAE (spatial factor 4, so 32×32 images give 8×8 latents),
a 2-layer CLIP text encoder and a byte-level tokenizer knowing :data:`TINY_WORDS` whole (other
text falls back to bytes), with SD 1.5's scheduler. Weights are random: outputs are noise-like,
but every code path of the real model runs, so method invariants can be tested on it.
"""

from __future__ import annotations

import dataclasses

import torch

from diffrepro.core.models.autoencoder_kl import AutoencoderKL, AutoencoderKLConfig
from diffrepro.core.models.clip import CLIPTextConfig, CLIPTextModel
from diffrepro.core.models.sd_unet import UNet2DConditionConfig, UNet2DConditionModel
from diffrepro.core.models.stable_diffusion import SD1_SCHEDULER, SchedulerConfig, StableDiffusion
from diffrepro.core.tokenizer import CLIPTokenizer, minimal_vocab

TINY_WORDS = ("a", "photo", "of", "the", "cat", "dog", "horse", "painting", "red", "sitting")
TINY_UNET = UNet2DConditionConfig(
    sample_size=8,
    block_out_channels=(16, 32),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    layers_per_block=1,
    norm_num_groups=8,
    cross_attention_dim=32,
    attention_head_dim=2,
)
TINY_VAE = AutoencoderKLConfig(
    block_out_channels=(8, 16, 16),
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    norm_num_groups=4,
    sample_size=32,
)
TINY_TEXT = CLIPTextConfig(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
)


def tiny_stable_diffusion(
    *,
    seed: int = 0,
    words: tuple[str, ...] = TINY_WORDS,
    scheduler: SchedulerConfig = SD1_SCHEDULER,
    dtype: torch.dtype = torch.float32,
) -> StableDiffusion:
    """The tiny stack above with weights drawn from ``seed`` (deterministic)."""
    vocab, merges = minimal_vocab(list(words))
    text_config = dataclasses.replace(TINY_TEXT, vocab_size=len(vocab))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(TINY_UNET)
        vae = AutoencoderKL(TINY_VAE)
        text = CLIPTextModel(text_config)
    sd = StableDiffusion(
        unet.eval(), vae.eval(), text.eval(), CLIPTokenizer(vocab, merges), scheduler
    )
    return sd.to(dtype=dtype)
