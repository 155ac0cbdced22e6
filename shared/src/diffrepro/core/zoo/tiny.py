"""Tiny variants of the built-in entries (16 px, a few steps): seconds to build, for tests.

Same builders, openers and file layouts as the real entries, so a test of a tiny entry tests
the real code path. Register them (``for e in tiny_entries(): zoo.register(e, replace=True)``)
and point the cache at a temporary folder (``root=`` or ``DIFFREPRO_ZOO_DIR``).
"""

from __future__ import annotations

import dataclasses

from diffrepro.core.emoji import select
from diffrepro.core.models.autoencoder_kl import AutoencoderKLConfig
from diffrepro.core.models.clip import CLIPTextConfig
from diffrepro.core.models.sd_unet import UNet2DConditionConfig
from diffrepro.core.models.unet import UNetConfig
from diffrepro.core.zoo.ddpm import DDPMConfig, DDPMRecipe, DiffusionFlags, ddpm_entry
from diffrepro.core.zoo.judge import JudgeConfig, JudgeRecipe, judge_entry
from diffrepro.core.zoo.registry import ZooEntry
from diffrepro.core.zoo.t2i import T2IConfig, T2IRecipe, t2i_entry
from diffrepro.core.zoo.vae import VAERecipe, vae_entry

SIZE = 16

TINY_VAE = AutoencoderKLConfig(
    block_out_channels=(8, 16),
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    norm_num_groups=4,
    sample_size=SIZE,
    scaling_factor=1.0,
)
TINY_T2I = T2IConfig(
    unet=UNet2DConditionConfig(
        sample_size=SIZE // 2,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=32,
        attention_head_dim=2,
    ),
    text=CLIPTextConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=40,
    ),
    image_size=SIZE,
)
TINY_UNET = UNetConfig(
    image_size=SIZE,
    model_channels=16,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(8,),
    num_heads=2,
    resblock_updown=True,
    num_groups=4,
)


def tiny_entries(prefix: str = "tiny-", steps: int = 2, seed: int = 0) -> list[ZooEntry]:
    """tiny-emoji-vae, tiny-emoji-t2i, tiny-emoji-judge, tiny-emoji-ddpm(-cond)."""
    vae = vae_entry(
        f"{prefix}emoji-vae",
        TINY_VAE,
        VAERecipe(image_size=SIZE, steps=steps, batch_size=4, seed=seed),
    )
    t2i = t2i_entry(
        f"{prefix}emoji-t2i",
        TINY_T2I,
        T2IRecipe(steps=steps, batch_size=4, warmup_steps=1, seed=seed),
        vae=vae.name,
    )
    judge = judge_entry(
        f"{prefix}emoji-judge",
        JudgeConfig(image_size=SIZE, widths=(8, 16), embed_dim=16, num_emoji=len(select())),
        JudgeRecipe(steps=steps, batch_size=8, seed=seed),
    )
    recipe = DDPMRecipe(steps=steps, batch_size=4, warmup_steps=1, seed=seed)
    ddpm = ddpm_entry(
        f"{prefix}emoji-ddpm", config=DDPMConfig(TINY_UNET, DiffusionFlags()), recipe=recipe
    )
    cond_unet = dataclasses.replace(TINY_UNET, num_classes=8)
    ddpm_cond = ddpm_entry(
        f"{prefix}emoji-ddpm-cond",
        conditional=True,
        config=DDPMConfig(cond_unet, DiffusionFlags()),
        recipe=recipe,
    )
    return [vae, t2i, judge, ddpm, ddpm_cond]
