"""The CPU speed switches of ``diffrepro.core.speedups``, each measured against the default path.

- channels-last sampling: 5 DDIM steps of the emoji-ddpm ADM UNet (batch 16, the zoo's
  ``PixelDiffusion.sample`` loop) and of the emoji-t2i UNet with CFG (batch 16), under
  ``speedups.channels_last(model)`` with channels-last noise, against the contiguous layout;
  the max difference of the results is reported;
- ``torch.compile`` (inductor): the emoji-ddpm UNet forward (batch 16), compiled against eager,
  with the one-off compile time beside it (skipped with one line when no compiler is present);
- bf16 autocast: the same forward under ``torch.autocast("cpu", torch.bfloat16)`` (forced here,
  whatever ``speedups.cpu_has_native_bf16()`` says) against fp32, with the max error;
- sampler overhead: the DDIM loop with a free model (``0.1 * x``), i.e. the sampler's own
  arithmetic per step, as a share of one UNet step (what fewer allocations could still win);
- attention ``auto`` against ``sdpa`` at the UNet shapes (auto resolves to sdpa on CPU).

Run: ``python shared/benchmarks/bench_speedups.py [--repeat 5] [--quick] [--no-compile]``
(writes runs/bench/speedups.{json,md}).
"""

from __future__ import annotations

import sys
import time

import torch
from _compare_models import options

from diffrepro.core import speedups
from diffrepro.core.attention import attention
from diffrepro.core.benchmark import compare, write_results
from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.core.models.unet import UNetModel
from diffrepro.core.samplers import cfg_model, sample_ddim
from diffrepro.core.schedules import Schedule
from diffrepro.core.zoo.ddpm import DDPM_UNET
from diffrepro.core.zoo.t2i import MAX_TOKENS, T2I_CONFIG

GRID = [999, 799, 599, 399, 199]


def adm_unet() -> UNetModel:
    """The emoji-ddpm UNet with a random (not zero-initialised) output conv, so that the output
    depends on the whole network and differences between variants show."""
    unet = UNetModel(DDPM_UNET).eval()
    with torch.no_grad():
        torch.nn.init.normal_(unet.out[2].weight, std=0.02)
    return unet


def _row(switch: str, case: str, timed: dict, variant: str, **extra) -> dict:
    t = timed[variant]
    return {
        "switch": switch,
        "case": case,
        "variant": variant,
        "ms": 1e3 * t["time_s"],
        "vs_default": t["ratio"],
        "ratio_range": f"{t['ratio_min']:.3f}-{t['ratio_max']:.3f}",
        **extra,
    }


def sampling_rows(repeat: int) -> list[dict]:
    torch.manual_seed(0)
    schedule = Schedule.named("linear", 1000)
    adm = adm_unet()
    sd_unet = UNet2DConditionModel(T2I_CONFIG.unet).eval()
    ctx = torch.randn(16, MAX_TOKENS, T2I_CONFIG.unet.cross_attention_dim)
    guided = cfg_model(sd_unet, ctx, torch.zeros_like(ctx), 4.0)
    cases = {
        "emoji-ddpm DDIM x5, batch 16": (adm, lambda x, t: adm(x, t), (16, 3, 32, 32)),
        "emoji-t2i CFG DDIM x5, batch 16": (sd_unet, guided, (16, 4, 8, 8)),
    }
    rows = []
    for case, (module, model, shape) in cases.items():
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        results = {}

        def contiguous(model=model, x=x, results=results):
            results["contiguous"] = sample_ddim(model, x, schedule, timesteps=GRID, clip_x0=1.0)

        def channels_last(module=module, model=model, x=x, results=results):
            with speedups.channels_last(module):
                x_cl = speedups.to_channels_last(x)
                out = sample_ddim(model, x_cl, schedule, timesteps=GRID, clip_x0=1.0)
            results["channels_last"] = out

        timed = compare(
            {"contiguous": contiguous, "channels_last": channels_last},
            reference="contiguous",
            repeat=repeat,
        )
        diff = float((results["channels_last"] - results["contiguous"]).abs().max())
        rows.append(_row("channels_last", case, timed, "channels_last", max_abs_diff=diff))
        print(rows[-1], flush=True)
    return rows


def compile_and_bf16_rows(repeat: int, compile_: bool) -> list[dict]:
    torch.manual_seed(0)
    unet = adm_unet()
    x = torch.randn(16, 3, 32, 32)
    t = torch.randint(0, 1000, (16,))
    rows = []
    with torch.no_grad():
        ref = unet(x, t)

        def eager():
            return unet(x, t)

        def bf16():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return unet(x, t)

        fns = {"eager fp32": eager, "bf16 autocast": bf16}
        compile_note = speedups.compiler_problem("cpu")
        if compile_ and compile_note is None:
            compiled = speedups.maybe_compile(unet)
            start = time.perf_counter()
            out = compiled(x, t)
            compile_s = time.perf_counter() - start
            compile_err = float((out - ref).abs().max())
            fns["torch.compile"] = lambda: compiled(x, t)
        timed = compare(fns, reference="eager fp32", repeat=repeat)
        bf16_err = float((bf16().float() - ref).abs().max())
        case = "emoji-ddpm UNet forward, batch 16"
        rows.append(
            _row(
                "bf16 autocast",
                case,
                timed,
                "bf16 autocast",
                max_abs_diff=bf16_err,
                native_bf16=speedups.cpu_has_native_bf16(),
            )
        )
        if "torch.compile" in fns:
            rows.append(
                _row(
                    "torch.compile",
                    case,
                    timed,
                    "torch.compile",
                    max_abs_diff=compile_err,
                    compile_s=compile_s,
                )
            )
        else:
            reason = compile_note or "skipped (--quick or --no-compile)"
            rows.append({"switch": "torch.compile", "case": case, "note": reason})
    for row in rows:
        print(row, flush=True)
    return rows


def sampler_overhead_rows(repeat: int) -> list[dict]:
    torch.manual_seed(0)
    schedule = Schedule.named("linear", 1000)
    unet = UNetModel(DDPM_UNET).eval()
    x = torch.randn(16, 3, 32, 32)
    t = torch.full((16,), 500)

    def free_loop():
        sample_ddim(lambda x, t: 0.1 * x, x, schedule, timesteps=GRID, clip_x0=1.0)

    def unet_calls():
        with torch.no_grad():
            for _ in GRID:
                unet(x, t)

    timed = compare(
        {"unet x5": unet_calls, "sampler only": free_loop}, reference="unet x5", repeat=repeat
    )
    row = _row("sampler arithmetic", "DDIM x5 at 16x3x32x32", timed, "sampler only")
    print(row, flush=True)
    return [row]


SHAPES = [  # tokens, keys, head_dim (batch 1, heads 1 on CPU)
    ("emoji-t2i 8x8 self, d=16", 64, 64, 16),
    ("emoji-t2i 8x8 cross, d=16", 64, MAX_TOKENS, 16),
    ("emoji-ddpm 8x8 self, d=32", 64, 64, 32),
    ("SD1 32x32 self, d=80", 1024, 1024, 80),
    ("SD1 64x64 cross (77 keys), d=40", 4096, 77, 40),
    ("SD1 16x16 cross (77 keys), d=160", 256, 77, 160),
]


def attention_rows(repeat: int) -> list[dict]:
    rows = []
    for name, nq, nk, d in SHAPES:
        g = torch.Generator().manual_seed(0)
        batch, heads = (32, 4) if nq <= 64 else (1, 1)
        q, k, v = (torch.randn(batch, heads, n, d, generator=g) for n in (nq, nk, nk))

        def run(backend, q=q, k=k, v=v, calls=20 if nq <= 64 else 1):
            def fn():
                with torch.no_grad():
                    for _ in range(calls):
                        attention(q, k, v, backend=backend)

            return fn

        timed = compare(
            {b: run(b) for b in ("sdpa", "auto", "math")}, reference="sdpa", repeat=repeat
        )
        for backend in ("auto", "math"):
            rows.append(_row(f"attention {backend}", name, timed, backend))
        print(name, {b: round(t["ratio"], 3) for b, t in timed.items()}, flush=True)
    return rows


def main() -> None:
    no_compile = "--no-compile" in sys.argv
    if no_compile:
        sys.argv.remove("--no-compile")
    args = options(__doc__.splitlines()[0])
    start = time.perf_counter()
    rows = attention_rows(args.repeat)
    rows += sampling_rows(args.repeat)
    rows += sampler_overhead_rows(args.repeat)
    rows += compile_and_bf16_rows(args.repeat, compile_=not (no_compile or args.quick))
    notes = (
        f"fp32 on CPU, {torch.get_num_threads()} thread(s); ratios = variant / default per "
        "interleaved repeat (median, range). Attention rows: 20 calls per timing for the small "
        f"zoo shapes (batch 32, 4 heads), one call for SD shapes. Total "
        f"{time.perf_counter() - start:.0f} s."
    )
    print(write_results("speedups", rows, notes=notes).read_text())


if __name__ == "__main__":
    main()
