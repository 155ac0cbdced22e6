"""Our UNet2DConditionModel and AutoencoderKL against diffusers' at matched configurations.

Cases (parameter counts asserted equal before timing; diffusers is built from our config, whose
fields are diffusers' names and defaults):

- emoji-t2i UNet: the zoo's text-to-image UNet (8x8 latents, 40-token context), batch 16;
- emoji-vae: the zoo's VAE, encode + decode of 32 px images, batch 16;
- SD 1.5 UNet: SD 1.5's full UNet config, random weights, 64x64 latents, 77x768 context, batch 1;
  forward only, and forward+backward with ``--full`` (two 860 M-parameter models, one set of
  gradients at a time and the activations: about 18 GB of RAM, a few minutes per call on 1 core);
- SD 1.5 VAE decoder: SD 1.5's full VAE config, random weights, decode of 32x32 latents
  (256 px; ``--full`` decodes 64x64 latents, 512 px), batch 1, forward only.

Variants: ``diffusers`` (the reference), ``ours``, and both in channels-last layout
(``*_cl``: weights and inputs). Ratios are ours / diffusers' default layout, measured interleaved.

Run: ``python shared/benchmarks/bench_sd_models.py [--repeat 5] [--quick] [--full]``
(writes runs/bench/sd_models.{json,md}).
"""

from __future__ import annotations

import dataclasses
import sys
import time

import torch
from _compare_models import Variant, case_rows, channels_last_copy, options, to_cl
from diffusers import AutoencoderKL as DiffusersVAE
from diffusers import UNet2DConditionModel as DiffusersUNet

from diffrepro.core.benchmark import write_results
from diffrepro.core.models.autoencoder_kl import AutoencoderKL, AutoencoderKLConfig
from diffrepro.core.models.sd_export import config_dict
from diffrepro.core.models.sd_unet import UNet2DConditionConfig, UNet2DConditionModel
from diffrepro.core.zoo.t2i import MAX_TOKENS, T2I_CONFIG
from diffrepro.core.zoo.vae import VAE_CONFIG

SD15_UNET = UNet2DConditionConfig(sample_size=64, cross_attention_dim=768)
SD15_VAE = AutoencoderKLConfig(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    sample_size=512,
)


def unet_variants(config: UNet2DConditionConfig, batch: int, tokens: int, cl: bool) -> dict:
    torch.manual_seed(0)
    ours = UNet2DConditionModel(config).eval()
    theirs = DiffusersUNet(**config_dict(config)).eval()
    size = config.sample_size
    x = torch.randn(batch, config.in_channels, size, size)
    t = torch.randint(0, 1000, (batch,))
    ctx = torch.randn(batch, tokens, config.cross_attention_dim)
    variants = {
        "diffusers": Variant(theirs, lambda: theirs(x, t, encoder_hidden_states=ctx).sample),
        "ours": Variant(ours, lambda: ours(x, t, ctx)),
    }
    if cl:
        ours_cl, theirs_cl, x_cl = channels_last_copy(ours), channels_last_copy(theirs), to_cl(x)
        variants["diffusers_cl"] = Variant(
            theirs_cl, lambda: theirs_cl(x_cl, t, encoder_hidden_states=ctx).sample
        )
        variants["ours_cl"] = Variant(ours_cl, lambda: ours_cl(x_cl, t, ctx))
    return variants


def vae_variants(config: AutoencoderKLConfig, batch: int, size: int, decode_only: bool) -> dict:
    torch.manual_seed(0)
    ours = AutoencoderKL(config).eval()
    theirs = DiffusersVAE(**config_dict(config)).eval()
    factor = 2 ** (len(config.block_out_channels) - 1)
    if decode_only:
        z = torch.randn(batch, config.latent_channels, size // factor, size // factor)
        return {
            "diffusers": Variant(theirs, lambda: theirs.decode(z).sample),
            "ours": Variant(ours, lambda: ours.decode(z)),
        }
    x = torch.randn(batch, config.in_channels, size, size)
    ours_cl, theirs_cl, x_cl = channels_last_copy(ours), channels_last_copy(theirs), to_cl(x)
    return {
        "diffusers": Variant(theirs, lambda: theirs(x).sample),
        "ours": Variant(ours, lambda: ours(x)),
        "diffusers_cl": Variant(theirs_cl, lambda: theirs_cl(x_cl).sample),
        "ours_cl": Variant(ours_cl, lambda: ours_cl(x_cl)),
    }


def main() -> None:
    full = "--full" in sys.argv
    if full:
        sys.argv.remove("--full")
    args = options(__doc__.splitlines()[0])
    torch.manual_seed(0)
    start = time.perf_counter()
    rows = []
    zoo_unet = dataclasses.replace(T2I_CONFIG.unet)
    rows += case_rows(
        "emoji-t2i UNet, batch 16",
        unet_variants(zoo_unet, 16, MAX_TOKENS, cl=True),
        repeat=args.repeat,
    )
    rows += case_rows(
        "emoji-vae, encode+decode 32 px, batch 16",
        vae_variants(VAE_CONFIG, 16, 32, decode_only=False),
        repeat=args.repeat,
    )
    if not args.quick:
        sd_repeat = max(1, min(args.repeat, 3))
        rows += case_rows(
            "SD 1.5 UNet, 64x64 latents, batch 1",
            unet_variants(SD15_UNET, 1, 77, cl=False),
            repeat=sd_repeat,
            backward=full,
        )
        size = 512 if full else 256
        rows += case_rows(
            f"SD 1.5 VAE decode, {size} px, batch 1",
            vae_variants(SD15_VAE, 1, size, decode_only=True),
            repeat=sd_repeat,
            backward=False,
        )
    notes = (
        f"fp32 on CPU, {torch.get_num_threads()} thread(s); times are medians of interleaved "
        "repeats, ratios are per-repeat ours/diffusers medians with their range; peak memory is "
        "the peak of tensor memory allocated during one call (torch.profiler memory events), "
        f"not RSS. Total {time.perf_counter() - start:.0f} s."
    )
    print(write_results("sd_models", rows, notes=notes).read_text())


if __name__ == "__main__":
    main()
