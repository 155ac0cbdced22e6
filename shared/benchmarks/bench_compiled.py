"""Our UNets with ``torch.compile`` (inductor, CPU) against diffusers', side by side in one process.

The eager comparisons (``bench_unet.py``, ``bench_sd_models.py``) run the same oneDNN
convolutions on both sides, so eager code can only differ in the non-convolution part of a step.
This benchmark measures the compiled path the issue's 0.8x target asks about, *and* diffusers
compiled the same way, so a reader sees both "ours compiled vs diffusers as users run it" and
the like-for-like "compiled vs compiled". Each variant is compiled once (``torch.compile`` on the
module, default mode); the warm-up call pays the compile and its time is recorded; the compiled
output is checked against the eager one before any timing.

Cases: the zoo's emoji-ddpm ADM UNet (batch 16, its training batch) and, unless ``--quick``, the
emoji-t2i UNet (batch 16, 40-token context). Forward (no grad) and forward+backward.
Also reported: the share of a step spent in convolution ops, from ``torch.profiler``, which
bounds what any eager rewrite of the other ops can gain.

Run: ``python shared/benchmarks/bench_compiled.py [--repeat 5] [--quick]``
(writes runs/bench/compiled.{json,md}; skipped with one line when no C++ compiler is present).
Peak memory is left empty for the compiled variants: inductor's generated kernels allocate
outside the aten ops whose memory events ``benchmark.peak_memory`` sums on CPU.
"""

from __future__ import annotations

import time

import torch
from _compare_models import Variant, case_rows, options
from bench_unet import diffusers_config
from diffusers import UNet2DConditionModel as DiffusersUNet
from diffusers import UNet2DModel
from torch.profiler import ProfilerActivity, profile

from diffrepro.core import speedups
from diffrepro.core.benchmark import write_results
from diffrepro.core.models.sd_export import config_dict
from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.core.models.unet import UNetModel
from diffrepro.core.zoo.ddpm import DDPM_UNET
from diffrepro.core.zoo.t2i import MAX_TOKENS, T2I_CONFIG

CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution")


def with_compiled(modules: dict, call) -> dict[str, Variant]:
    """Eager and compiled variants of ``modules`` ({"diffusers": m, "ours": m}).

    ``call(name, fn)`` is the forward of variant ``name`` running ``fn`` (the module or its
    compiled twin) on the case's fixed inputs."""
    out = {}
    for name, module in modules.items():
        out[name] = Variant(module, call(name, module))
        out[f"{name}_compiled"] = Variant(module, call(name, torch.compile(module)))
    return out


def adm_case(batch: int) -> dict[str, Variant]:
    torch.manual_seed(0)
    ours, theirs = UNetModel(DDPM_UNET), UNet2DModel(**diffusers_config(DDPM_UNET))
    torch.nn.init.normal_(ours.out[-1].weight, std=0.02)  # zero-initialised: make it informative
    size = DDPM_UNET.image_size
    x = torch.randn(batch, DDPM_UNET.in_channels, size, size)
    t = torch.randint(0, 1000, (batch,))

    def call(name, fn):
        return (lambda: fn(x, t)) if name == "ours" else (lambda: fn(x, t).sample)

    return with_compiled({"diffusers": theirs, "ours": ours}, call)


def t2i_case(batch: int) -> dict[str, Variant]:
    torch.manual_seed(0)
    config = T2I_CONFIG.unet
    ours, theirs = UNet2DConditionModel(config), DiffusersUNet(**config_dict(config))
    size = config.sample_size
    x = torch.randn(batch, config.in_channels, size, size)
    t = torch.randint(0, 1000, (batch,))
    ctx = torch.randn(batch, MAX_TOKENS, config.cross_attention_dim)

    def call(name, fn):
        if name == "ours":
            return lambda: fn(x, t, ctx)
        return lambda: fn(x, t, encoder_hidden_states=ctx).sample

    return with_compiled({"diffusers": theirs, "ours": ours}, call)


def compile_check(variants: dict[str, Variant]) -> dict[str, dict]:
    """Per compiled variant: the first call's time (the compile) and max |compiled - eager|."""
    found = {}
    for name in ("diffusers", "ours"):
        with torch.no_grad():
            eager = variants[name].forward()
            start = time.perf_counter()
            compiled = variants[f"{name}_compiled"].forward()
        found[f"{name}_compiled"] = {
            "compile_fwd_s": time.perf_counter() - start,
            "max_abs_diff": float((compiled - eager).abs().max()),
        }
        print(name, "compiled:", found[f"{name}_compiled"], flush=True)
    return found


def conv_share(variant: Variant) -> float:
    """Fraction of one eager forward+backward's self CPU time spent in convolution ops."""

    def step():
        variant.forward().square().mean().backward()
        variant.module.zero_grad(set_to_none=True)

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_OPS)
    return conv / max(total, 1)


def case(label: str, variants: dict[str, Variant], repeat: int) -> list[dict]:
    checks = compile_check(variants)
    shares = {name: conv_share(variants[name]) for name in ("diffusers", "ours")}
    rows = case_rows(label, variants, repeat=repeat)
    for row in rows:
        row.update(checks.get(row["variant"], {}))
        if row["variant"].endswith("_compiled"):  # inductor's kernels escape the profiler's
            for key in [k for k in row if "peak_mib" in k or "mem_vs" in k]:  # memory events
                row[key] = None
        if row["variant"] in shares:
            row["conv_share_fwd_bwd"] = shares[row["variant"]]
    return rows


def main() -> None:
    args = options(__doc__.splitlines()[0])
    problem = speedups.compiler_problem("cpu")
    if problem is not None:
        print(f"bench_compiled: skipped: {problem}")
        return
    start = time.perf_counter()
    rows = case("emoji-ddpm ADM UNet, 32 px, batch 16", adm_case(16), args.repeat)
    if not args.quick:
        rows += case("emoji-t2i UNet, 8x8 latents, batch 16", t2i_case(16), args.repeat)
    notes = (
        f"fp32 on CPU, {torch.get_num_threads()} thread(s); torch.compile default mode (inductor); "
        "ratios are per-repeat medians against diffusers eager, with their range; compile_fwd_s "
        "is the first no-grad call of the compiled module (the forward compile; the backward "
        "graph compiles in the fwd+bwd warm-up, not timed); conv_share_fwd_bwd is the "
        "profiler's share of self CPU time in convolution ops for the eager step. "
        f"Total {time.perf_counter() - start:.0f} s."
    )
    print(write_results("compiled", rows, notes=notes).read_text())


if __name__ == "__main__":
    main()
