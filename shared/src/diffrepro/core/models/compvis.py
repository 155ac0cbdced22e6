"""Original CompVis / LDM single-file checkpoints (``v1-5-pruned-emaonly.safetensors`` style).

A single file holds the UNet under ``model.diffusion_model.``, the VAE under
``first_stage_model.`` and the CLIP text encoder under ``cond_stage_model.transformer.``
(transformers' v4 names), plus EMA copies under ``model_ema.`` with the dots of the UNet names
removed. The files carry no config, so SD 1.x's is assumed (:data:`SD1_UNET`, :data:`SD1_VAE`,
:data:`SD1_TEXT`); other configs of the same family can be passed. A file whose cross-attention
width differs from the config (SD 2.x: 1024, SDXL) is refused with a clear error.

The key conversion is written in the diffusers → LDM direction, one rule per name part, and
applied to every key of our module (so nothing is silently dropped):

UNet (``L`` = layers_per_block, level ``i``, layer ``j``):

=========================================  ==============================================
diffusers                                  LDM
=========================================  ==============================================
``time_embedding.linear_1`` / ``_2``        ``time_embed.0`` / ``.2``
``conv_in``                                ``input_blocks.0.0``
``down_blocks.i.resnets.j``                ``input_blocks.{(L+1)i+j+1}.0``
``down_blocks.i.attentions.j``             ``input_blocks.{(L+1)i+j+1}.1``
``down_blocks.i.downsamplers.0.conv``      ``input_blocks.{(L+1)(i+1)}.0.op``
``mid_block.resnets.0`` / ``attentions.0``  ``middle_block.0`` / ``.1``; ``resnets.1`` → ``.2``
``up_blocks.i.resnets.j``                  ``output_blocks.{(L+1)i+j}.0``
``up_blocks.i.attentions.j``               ``output_blocks.{(L+1)i+j}.1``
``up_blocks.i.upsamplers.0.conv``          ``output_blocks.{(L+1)i+L}.{1|2}.conv`` (2: attention)
``conv_norm_out`` / ``conv_out``           ``out.0`` / ``out.2``
resnet ``norm1 conv1 time_emb_proj``       ``in_layers.0 in_layers.2 emb_layers.1``
resnet ``norm2 conv2 conv_shortcut``       ``out_layers.0 out_layers.3 skip_connection``
=========================================  ==============================================

Transformer blocks keep their names. VAE: ``down_blocks.i.resnets.j`` → ``down.i.block.j``,
``downsamplers.0`` → ``downsample``, decoder ``up_blocks.i`` → ``up.{n-1-i}`` (reversed),
``upsamplers.0`` → ``upsample``, ``mid_block.resnets.0/1`` → ``mid.block_1/2``,
``mid_block.attentions.0`` → ``mid.attn_1`` with ``group_norm to_q to_k to_v to_out.0`` →
``norm q k v proj_out`` (1×1-conv weights, squeezed), ``conv_shortcut`` → ``nin_shortcut``,
``conv_norm_out`` → ``norm_out``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import torch

from diffrepro.core.checkpoints import read_state_dict
from diffrepro.core.models.autoencoder_kl import AutoencoderKL, AutoencoderKLConfig
from diffrepro.core.models.clip import CLIPTextConfig, CLIPTextModel
from diffrepro.core.models.pretrained import build_and_load
from diffrepro.core.models.sd_unet import (
    UNet2DConditionConfig,
    UNet2DConditionModel,
    fit_projection_weight,
)

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIXES = ("first_stage_model.", "vae.")
TEXT_PREFIX = "cond_stage_model.transformer."
EMA_PREFIX = "model_ema."

SD1_UNET = UNet2DConditionConfig(sample_size=64, cross_attention_dim=768)
SD1_VAE = AutoencoderKLConfig(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    sample_size=512,
)
SD1_TEXT = CLIPTextConfig(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    projection_dim=768,
)
_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def unet_key_to_compvis(key: str, config: UNet2DConditionConfig) -> str:
    """The LDM name (without ``model.diffusion_model.``) of one diffusers UNet key."""
    per = config.levels("layers_per_block")
    if len(set(per)) != 1:
        raise ValueError("CompVis checkpoints use one layers_per_block for every level")
    group = per[0] + 1
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    for old, new in fixed.items():
        if key.startswith(old + "."):
            return new + key[len(old) :]
    parts = key.split(".")
    if parts[0] == "mid_block":
        index = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[".".join(parts[1:3])]
        return _with_resnet_names(f"middle_block.{index}", parts[1], parts[3:])
    level, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
    if parts[0] == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{group * (level + 1)}.0.op." + ".".join(rest[1:])
        return _with_resnet_names(
            f"input_blocks.{group * level + j + 1}.{int(kind == 'attentions')}", kind, rest
        )
    if kind == "upsamplers":
        slot = 2 if config.up_block_types[level].startswith("CrossAttn") else 1
        return f"output_blocks.{group * level + group - 1}.{slot}." + ".".join(rest)
    return _with_resnet_names(
        f"output_blocks.{group * level + j}.{int(kind == 'attentions')}", kind, rest
    )


def vae_key_to_compvis(key: str, config: AutoencoderKLConfig) -> str:
    """The LDM name (without ``first_stage_model.``) of one diffusers VAE key."""
    n = len(config.block_out_channels)

    def decoder_level(m: re.Match) -> str:
        return f"decoder.up.{n - 1 - int(m.group(1))}."

    key = re.sub(r"^decoder\.up_blocks\.(\d+)\.", decoder_level, key)
    key = re.sub(r"^encoder\.down_blocks\.(\d+)\.", r"encoder.down.\1.", key)
    key = key.replace(".resnets.", ".block.").replace(".downsamplers.0.", ".downsample.")
    key = key.replace(".upsamplers.0.", ".upsample.").replace(".conv_shortcut.", ".nin_shortcut.")
    key = key.replace("mid_block.block.0.", "mid.block_1.").replace(
        "mid_block.block.1.", "mid.block_2."
    )
    key = key.replace(".conv_norm_out.", ".norm_out.")
    if ".mid_block.attentions.0." in key:
        head, name = key.split(".mid_block.attentions.0.")
        layer, param = name.rsplit(".", 1)
        key = f"{head}.mid.attn_1.{_VAE_ATTENTION[layer]}.{param}"
    return key


def convert_unet(
    state: dict[str, torch.Tensor], config: UNet2DConditionConfig, *, use_ema: bool = False
) -> dict[str, torch.Tensor]:
    """The diffusers-named UNet state dict inside a CompVis checkpoint."""
    names = _module_keys(lambda: UNet2DConditionModel(config))
    if use_ema:
        return _gather(
            state,
            names,
            lambda k: EMA_PREFIX
            + ("diffusion_model." + unet_key_to_compvis(k, config)).replace(".", ""),
        )
    converted = _gather(state, names, lambda k: UNET_PREFIX + unet_key_to_compvis(k, config))
    linear = config.use_linear_projection
    return {k: fit_projection_weight(k, v, linear) for k, v in converted.items()}


def convert_vae(
    state: dict[str, torch.Tensor], config: AutoencoderKLConfig
) -> dict[str, torch.Tensor]:
    """The diffusers-named VAE state dict inside a CompVis checkpoint."""
    prefix = next((p for p in VAE_PREFIXES if any(k.startswith(p) for k in state)), VAE_PREFIXES[0])
    names = _module_keys(lambda: AutoencoderKL(config))
    converted = _gather(state, names, lambda k: prefix + vae_key_to_compvis(k, config))
    return {
        k: v[:, :, 0, 0] if ".attentions." in k and v.ndim == 4 else v for k, v in converted.items()
    }


def convert_text_encoder(
    state: dict[str, torch.Tensor], config: CLIPTextConfig
) -> dict[str, torch.Tensor]:
    """The CLIP text encoder state dict inside a CompVis checkpoint."""
    names = _module_keys(lambda: CLIPTextModel(config))
    return _gather(state, names, lambda k: TEXT_PREFIX + "text_model." + k)


def load_compvis_checkpoint(
    path: str | os.PathLike,
    *,
    unet_config: UNet2DConditionConfig = SD1_UNET,
    vae_config: AutoencoderKLConfig = SD1_VAE,
    text_config: CLIPTextConfig = SD1_TEXT,
    use_ema: bool = False,
    dtype: torch.dtype | None = torch.float32,
) -> tuple[UNet2DConditionModel, AutoencoderKL, CLIPTextModel]:
    """UNet, VAE and text encoder of a CompVis single file (``.safetensors``, or ``.ckpt``
    through ``torch.load(weights_only=True)``). ``use_ema`` takes the UNet's EMA weights."""
    state = read_state_dict(path)
    _check_family(state, unet_config, path)
    source = str(path)
    unet_state = convert_unet(state, unet_config, use_ema=use_ema)
    vae_state = convert_vae(state, vae_config)
    text_state = convert_text_encoder(state, text_config)
    del state  # the converted dicts share the tensors; drop the rest (EMA copies, buffers)
    unet = build_and_load(
        lambda: UNet2DConditionModel(unet_config), unet_state, dtype=dtype, source=source
    )
    vae = build_and_load(lambda: AutoencoderKL(vae_config), vae_state, dtype=dtype, source=source)
    text = build_and_load(
        lambda: CLIPTextModel(text_config), text_state, dtype=dtype, source=source
    )
    return unet, vae, text


def _with_resnet_names(prefix: str, kind: str, rest: list[str]) -> str:
    if kind == "resnets":
        rest = [_RESNET[rest[0]], *rest[1:]]
    return ".".join([prefix, *rest])


def _module_keys(build: Callable[[], torch.nn.Module]) -> list[str]:
    with torch.device("meta"):
        return list(build().state_dict())


def _gather(
    state: dict[str, torch.Tensor], names: list[str], source_key: Callable[[str], str]
) -> dict[str, torch.Tensor]:
    sources = {name: source_key(name) for name in names}
    missing = [src for src in sources.values() if src not in state]
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" (+{len(missing) - 10} more)" if len(missing) > 10 else ""
        )
        raise ValueError(
            f"not a CompVis SD checkpoint for this config: {len(missing)} missing keys: {shown}"
        )
    return {name: state[src] for name, src in sources.items()}


def _check_family(state: dict[str, torch.Tensor], config: UNet2DConditionConfig, path) -> None:
    probe = next(
        (k for k in state if k.startswith(UNET_PREFIX) and k.endswith("attn2.to_k.weight")), None
    )
    if probe is None:
        raise ValueError(f"{path} has no {UNET_PREFIX}...attn2 keys: not a CompVis SD checkpoint")
    width = state[probe].shape[1]
    expected = config.levels("cross_attention_dim")[0]
    if width != expected:
        raise ValueError(
            f"{path}: cross-attention width {width}, the config expects {expected} "
            "(SD 2.x / SDXL files need their own configs)"
        )
