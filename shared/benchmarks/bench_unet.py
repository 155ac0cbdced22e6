"""Forward+backward time and peak memory of our pixel UNet vs diffusers' UNet2DModel.

Both networks are built at a matched configuration (same widths, res blocks per level, attention
placement and head size, scale-shift norm, 32 groups) and timed in the same process; the table
reports ours / diffusers ratios. Small sizes on CPU, larger on CUDA. Needs diffusers (the parity
dependency group).
"""

from __future__ import annotations

import torch
from diffusers import UNet2DModel

from diffrepro.core.benchmark import measure, write_results
from diffrepro.core.models.unet import UNetConfig, UNetModel


def build_pair(image_size: int) -> tuple[UNetModel, UNet2DModel]:
    ours = UNetModel(
        UNetConfig(
            image_size=image_size,
            model_channels=64,
            channel_mult=(1, 2, 2),
            num_res_blocks=2,
            attention_resolutions=(image_size // 4,),
            num_head_channels=32,
            use_scale_shift_norm=True,
        )
    )
    theirs = UNet2DModel(
        sample_size=image_size,
        block_out_channels=(64, 128, 128),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        attention_head_dim=32,
        resnet_time_scale_shift="scale_shift",
        norm_num_groups=32,
    )
    return ours, theirs


def step_fn(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, diffusers_api: bool):
    def run() -> None:
        out = model(x, t).sample if diffusers_api else model(x, t)
        out.square().mean().backward()
        model.zero_grad(set_to_none=True)

    return run


def main() -> None:
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    batch, size = (32, 64) if cuda else (4, 32)
    torch.manual_seed(0)
    ours, theirs = (m.to(device) for m in build_pair(size))
    x = torch.randn(batch, 3, size, size, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    results = {}
    for name, model, api in (
        ("diffusers UNet2DModel", theirs, True),
        ("diffrepro UNetModel", ours, False),
    ):
        results[name] = measure(step_fn(model, x, t, api), device=device, warmup=1, repeat=3)
        results[name]["params"] = sum(p.numel() for p in model.parameters())
    ref = results["diffusers UNet2DModel"]
    rows = []
    for name, r in results.items():
        mem_ratio = r["peak_mem_bytes"] / ref["peak_mem_bytes"] if cuda else None
        rows.append(
            {
                "model": name,
                "params": r["params"],
                "fwd+bwd time (s)": r["time_s"],
                "time / diffusers": r["time_s"] / ref["time_s"],
                "peak mem (MiB)": r["peak_mem_bytes"] / 2**20 if cuda else None,
                "mem / diffusers": mem_ratio,
            }
        )
    notes = (
        f"Batch {batch}, {size}x{size} RGB, fp32 on {device}; widths (64, 128, 128),"
        " 2 res blocks per level, attention at the lowest level (head dim 32),"
        " scale-shift norm. Peak memory is only measured on CUDA."
    )
    path = write_results("bench_unet", rows, notes=notes)
    print(path.read_text())


if __name__ == "__main__":
    main()
