"""EDICT edit against DDIM inversion + regeneration at the same steps: time, UNet rows, memory.

One edit = invert with the source prompt, then denoise with the target prompt (S = 50,
s = 0.8: 40 active steps, G = 3). EDICT evaluates the guided UNet twice per step (once per
sequence), DDIM once, so the expected ratio is about 2x. Runs on the tiny random SD stack in
float64 (the reference path) and float32, on CUDA when there is one (then with peak memory; on
CPU peak memory is not measured).

Run: ``python packages/edict/benchmarks/bench_edict.py`` (writes runs/bench/edict.{json,md}).
"""

from __future__ import annotations

import dataclasses

import torch

from diffrepro.core.benchmark import measure, write_results
from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.edict import pipeline
from diffrepro.edict.config import EDICTConfig


def unet_rows(sd, fn) -> int:
    rows = []
    handle = sd.unet.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
    try:
        fn()
    finally:
        handle.remove()
    return sum(rows)


def bench(sd, latents, dtype: str, device: str, repeat: int) -> list[dict]:
    out = []
    base = EDICTConfig(dtype=dtype)
    timings = {}
    for method in ("ddim", "edict"):
        cfg = dataclasses.replace(base, method=method)

        def edit(cfg=cfg):
            return pipeline.edit(sd, latents, "a cat", "a dog", cfg)

        rows = unet_rows(sd, edit)  # doubles as the warm-up run
        stats = measure(edit, device=device, warmup=0, repeat=repeat)
        timings[method] = stats["time_s"]
        out.append({
            "model": "tiny SD (random)", "dtype": dtype, "method": method,
            "active_steps": cfg.active_steps, "unet_rows_per_edit": rows,
            "time_per_edit_s": stats["time_s"], "peak_mem_bytes": stats["peak_mem_bytes"],
        })  # fmt: skip
    out[-1]["edict_over_ddim"] = timings["edict"] / timings["ddim"]
    return out


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    rows = []
    for dtype in ("float64", "float32"):
        sd = tiny_stable_diffusion(dtype=EDICTConfig(dtype=dtype).torch_dtype).to(device)
        latents = torch.randn(1, 4, 8, 8, dtype=sd.dtype, device=device)
        rows += bench(sd, latents, dtype, device, repeat=2)
    notes = (
        "One edit = inversion + denoising over 40 active steps (S = 50, s = 0.8, G = 3). "
        "`edict_over_ddim` is the time ratio measured in this process; EDICT needs 2x the "
        "UNet rows of DDIM. Peak memory is measured on CUDA only."
    )
    path = write_results("edict", rows, notes=notes)
    for row in rows:
        print(row)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
