"""Our ADM pixel UNet (guided-diffusion layout) against diffusers' UNet2DModel, matched exactly.

:func:`diffusers_config` translates a :class:`UNetConfig` into UNet2DModel arguments: same widths,
res blocks per level, attention levels and head size, scale-shift norm, group count in the
ResBlocks *and* in the attention norms (``attn_norm_num_groups``: without it diffusers drops the
mid-block attention's GroupNorm under scale-shift, the mismatch of the earlier version of this
benchmark), and ResBlock up/down-sampling when ``resblock_updown``. The parameter counts are
asserted equal before timing.

Cases: the zoo's emoji-ddpm UNet (32 px, batch 16, its training batch), and a wider 64-channel
UNet at 32 px with batch 4. Variants: diffusers (reference), ours, and both in channels-last.

Run: ``python shared/benchmarks/bench_unet.py [--repeat 5] [--quick]``
(writes runs/bench/bench_unet.{json,md}).
"""

from __future__ import annotations

import time

import torch
from _compare_models import Variant, case_rows, channels_last_copy, options, to_cl
from diffusers import UNet2DModel

from diffrepro.core.benchmark import write_results
from diffrepro.core.models.unet import UNetConfig, UNetModel
from diffrepro.core.zoo.ddpm import DDPM_UNET

WIDE = UNetConfig(
    image_size=32,
    model_channels=64,
    channel_mult=(1, 2, 2),
    num_res_blocks=2,
    attention_resolutions=(8,),
    num_head_channels=32,
    use_scale_shift_norm=True,
)


def diffusers_config(c: UNetConfig) -> dict:
    """UNet2DModel arguments building the same network as ``UNetModel(c)``."""
    widths = [int(c.model_channels * m) for m in c.channel_mult]
    attn = {lvl for lvl in range(len(widths)) if 2**lvl in c.attention_downsample_factors}
    down = "ResnetDownsampleBlock2D" if c.resblock_updown else "DownBlock2D"
    up = "ResnetUpsampleBlock2D" if c.resblock_updown else "UpBlock2D"
    resample = "resnet" if c.resblock_updown else "conv"
    return dict(
        sample_size=c.image_size,
        in_channels=c.in_channels + c.cond_channels,
        out_channels=c.output_channels,
        block_out_channels=tuple(widths),
        layers_per_block=c.num_res_blocks,
        down_block_types=tuple(
            "AttnDownBlock2D" if i in attn else down for i in range(len(widths))
        ),
        up_block_types=tuple(
            "AttnUpBlock2D" if i in attn else up for i in reversed(range(len(widths)))
        ),
        downsample_type=resample,
        upsample_type=resample,
        attention_head_dim=c.num_head_channels,
        norm_num_groups=c.num_groups,
        attn_norm_num_groups=c.num_groups,
        resnet_time_scale_shift="scale_shift" if c.use_scale_shift_norm else "default",
        num_class_embeds=c.num_classes,
    )


def variants(config: UNetConfig, batch: int) -> dict:
    torch.manual_seed(0)
    ours = UNetModel(config)
    theirs = UNet2DModel(**diffusers_config(config))
    x = torch.randn(batch, config.in_channels, config.image_size, config.image_size)
    t = torch.randint(0, 1000, (batch,))
    ours_cl, theirs_cl, x_cl = channels_last_copy(ours), channels_last_copy(theirs), to_cl(x)
    return {
        "diffusers": Variant(theirs, lambda: theirs(x, t).sample),
        "ours": Variant(ours, lambda: ours(x, t)),
        "diffusers_cl": Variant(theirs_cl, lambda: theirs_cl(x_cl, t).sample),
        "ours_cl": Variant(ours_cl, lambda: ours_cl(x_cl, t)),
    }


def main() -> None:
    args = options(__doc__.splitlines()[0])
    start = time.perf_counter()
    rows = case_rows(
        "emoji-ddpm ADM UNet, 32 px, batch 16", variants(DDPM_UNET, 16), repeat=args.repeat
    )
    if not args.quick:
        rows += case_rows("ADM UNet, 64 ch, 32 px, batch 4", variants(WIDE, 4), repeat=args.repeat)
    notes = (
        f"fp32 on CPU, {torch.get_num_threads()} thread(s); medians of interleaved repeats, "
        "ratios ours/diffusers (default layout) per repeat, median and range; peak memory = peak "
        "tensor memory allocated during one call (torch.profiler memory events), not RSS. "
        f"Total {time.perf_counter() - start:.0f} s."
    )
    print(write_results("bench_unet", rows, notes=notes).read_text())


if __name__ == "__main__":
    main()
