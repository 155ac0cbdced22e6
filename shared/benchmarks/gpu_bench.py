"""GPU benchmark in one command: the Triton kernels against SDPA and eager, and the SD 1.5 UNet.

    uv run nox -s bench -- --device cuda          # or: uv run python shared/benchmarks/gpu_bench.py

On a CUDA machine (a few minutes; ``--quick`` for one dtype and fewer shapes):

- attention forward and forward+backward at SD 1.x / ADM shapes (batch 2 = CFG, 8 heads,
  4096/1024/256 tokens, 77 CLIP keys, head dims 40/64/80/160), fp16 and bf16, backends:
  ``triton`` (ours), ``sdpa`` (PyTorch's own choice), ``sdpa-flash``, ``sdpa-efficient``
  (forced with ``torch.nn.attention.sdpa_kernel``), ``auto`` (our dispatcher) and ``math``
  (eager softmax); ratios against ``sdpa``; ``auto_vs_sdpa`` is the number the issue targets
  (<= 1.02 on every shape);
- fused GroupNorm+SiLU (Triton) against eager ``F.group_norm`` + ``F.silu`` at the SD UNet's
  activation shapes, forward and forward+backward;
- correctness in the same run: every kernel's output (and gradients) against float64 math on
  the same inputs (the first batch element and head of each shape for attention), beside the
  error of SDPA in the same dtype, so "as accurate as SDPA" can be read off;
- the SD 1.5 UNet (full config, random weights) at 64x64 latents: a guided sampling step
  (batch 2) with ``auto`` (Triton) and ``sdpa`` attention, and a training step (batch 1, fwd+bwd),
  in fp16, with the output's error against the fp32 model.

Results: ``runs/bench/gpu.json`` and ``gpu.md``. ``--check-only --device cpu`` (with
``TRITON_INTERPRET=1``) runs the correctness checks at tiny shapes with no timings, which is
how this script is tested without a GPU (shared/tests/test_benchmark.py).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from diffrepro.core.attention import attention, attention_math
from diffrepro.core.benchmark import BENCH_DIR, compare, machine, peak_memory, write_results

# name, batch, heads, query tokens, key tokens, head dim
ATTENTION_SHAPES = [
    ("SD1 64x64 self d=40", 2, 8, 4096, 4096, 40),
    ("SD1 64x64 cross d=40", 2, 8, 4096, 77, 40),
    ("SD1 32x32 self d=80", 2, 8, 1024, 1024, 80),
    ("SD1 32x32 cross d=80", 2, 8, 1024, 77, 80),
    ("SD1 16x16 self d=160", 2, 8, 256, 256, 160),
    ("ADM-256 32x32 self d=64", 2, 4, 1024, 1024, 64),
]
TINY_ATTENTION = [("tiny self d=40", 1, 2, 37, 37, 40), ("tiny cross d=80", 1, 1, 20, 9, 80)]
# name, batch, channels, height (= width), groups
NORM_SHAPES = [
    ("SD1 64x64 C=320", 2, 320, 64, 32),
    ("SD1 32x32 C=640", 2, 640, 32, 32),
    ("SD1 16x16 C=1280", 2, 1280, 16, 32),
    ("SD1 8x8 C=2560", 2, 2560, 8, 32),
]
TINY_NORM = [("tiny C=16", 1, 16, 6, 4)]
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="fp16 only, fewer shapes")
    parser.add_argument("--check-only", action="store_true", help="correctness, no timings")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (interpreter tests)")
    parser.add_argument("--dtypes", nargs="*", default=None, help="default: fp16 bf16")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--no-unet", action="store_true", help="skip the SD 1.5 UNet")
    parser.add_argument("--out", type=Path, default=BENCH_DIR)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.dtypes is None:
        args.dtypes = ["fp16"] if args.quick else ["fp16", "bf16"]
    unknown = [d for d in args.dtypes if d not in DTYPES]
    if unknown:
        parser.error(f"unknown dtype(s) {unknown}; choose from {sorted(DTYPES)}")
    return args


def sdpa_forced(which: str) -> Callable:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}

    def run(q, k, v):
        with sdpa_kernel([backend[which]]):
            return F.scaled_dot_product_attention(q, k, v)

    return run


def attention_backends(device: str) -> dict[str, Callable]:
    out = {
        "sdpa": lambda q, k, v: attention(q, k, v, backend="sdpa"),
        "triton": lambda q, k, v: attention(q, k, v, backend="triton"),
        "auto": lambda q, k, v: attention(q, k, v, backend="auto"),
        "math": lambda q, k, v: attention(q, k, v, backend="math"),
    }
    if device.startswith("cuda"):
        out["sdpa-flash"] = sdpa_forced("flash")
        out["sdpa-efficient"] = sdpa_forced("efficient")
    return out


def _qkv(b, h, nq, nk, d, dtype, device, seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g, device=device, dtype=dtype) for n in (nq, nk, nk)]


def attention_errors(fn: Callable, q, k, v) -> dict:
    """Max abs error of fn's output and q/k/v gradients against float64 math (one b, one h)."""
    q, k, v = (t[:1, :1].detach() for t in (q, k, v))
    grad = torch.randn(q.shape[:-1] + (v.shape[-1],), device=q.device, dtype=q.dtype)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = fn(*leaves)
    out.backward(grad)
    ref_leaves = [t.double().requires_grad_() for t in (q, k, v)]
    ref = attention_math(*ref_leaves)
    ref.backward(grad.double())
    errors = {"out_err": float((out.detach().double() - ref.detach()).abs().max())}
    for name, mine, theirs in zip(("dq", "dk", "dv"), leaves, ref_leaves):
        errors[f"{name}_err"] = float((mine.grad.double() - theirs.grad).abs().max())
    return errors


def _problem(name: str, q, k, v) -> str | None:
    from diffrepro.core.kernels.backend import triton_attention_problem

    if name in ("triton",):
        return triton_attention_problem(q, k, v)
    if name.startswith("sdpa-"):
        try:
            sdpa_forced(name.split("-")[1])(q[:1, :1, :8], k[:1, :1, :8], v[:1, :1, :8])
        except RuntimeError as err:
            return f"not available: {str(err).splitlines()[0][:80]}"
    return None


def attention_rows(args) -> list[dict]:
    rows = []
    shapes = TINY_ATTENTION if args.tiny else ATTENTION_SHAPES[: 3 if args.quick else None]
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        for shape, b, h, nq, nk, d in shapes:
            q, k, v = _qkv(b, h, nq, nk, d, dtype, args.device)
            backends = attention_backends(args.device)
            usable, base = {}, {"shape": shape, "dtype": dtype_name, "q": f"{b}x{h}x{nq}x{d}"}
            for name, fn in backends.items():
                problem = _problem(name, q, k, v)
                if problem is not None:
                    rows.append({**base, "backend": name, "note": problem})
                    continue
                usable[name] = fn
                rows.append({**base, "backend": name, **attention_errors(fn, q, k, v)})
            if not args.check_only:
                _time_attention(rows, usable, q, k, v, args)
            print(shape, dtype_name, "done", flush=True)
    return rows


def _time_attention(rows, usable, q, k, v, args) -> None:
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]

    def fwd(fn):
        def run():
            with torch.no_grad():
                fn(q, k, v)

        return run

    def fwd_bwd(fn):
        def run():
            fn(*leaves).sum().backward()
            for t in leaves:
                t.grad = None

        return run

    fwd_t = compare({n: fwd(f) for n, f in usable.items()}, reference="sdpa", device=args.device,
                    warmup=2, repeat=args.repeat)  # fmt: skip
    both_t = compare({n: fwd_bwd(f) for n, f in usable.items()}, reference="sdpa",
                     device=args.device, warmup=2, repeat=args.repeat)  # fmt: skip
    by_name = {r["backend"]: r for r in rows[-len(attention_backends(args.device)) :]}
    for name in usable:
        by_name[name].update(
            fwd_ms=1e3 * fwd_t[name]["time_s"],
            fwd_vs_sdpa=fwd_t[name]["ratio"],
            fwd_bwd_ms=1e3 * both_t[name]["time_s"],
            fwd_bwd_vs_sdpa=both_t[name]["ratio"],
            peak_mib=peak_memory(fwd_bwd(usable[name]), device=args.device) / 2**20,
        )


def norm_rows(args) -> list[dict]:
    from diffrepro.core.kernels import group_norm_silu, group_norm_silu_torch

    rows = []
    shapes = TINY_NORM if args.tiny else NORM_SHAPES[: 2 if args.quick else None]
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        for shape, b, c, hw, groups in shapes:
            g = torch.Generator(device=args.device).manual_seed(0)
            x = torch.randn(b, c, hw, hw, generator=g, device=args.device, dtype=dtype)
            w = 1 + 0.1 * torch.randn(c, generator=g, device=args.device)
            bias = 0.1 * torch.randn(c, generator=g, device=args.device)
            fns = {
                "eager": lambda x, w, bb, n=groups: group_norm_silu_torch(x, n, w, bb),
                "triton": lambda x, w, bb, n=groups: group_norm_silu(x, n, w, bb, backend="triton"),
            }
            for name, fn in fns.items():
                row = {"shape": shape, "dtype": dtype_name, "kernel": f"group_norm_silu {name}"}
                rows.append({**row, **_norm_errors(fn, x, w, bias, groups)})
            if not args.check_only:
                _time_norm(rows[-2:], fns, x, w, bias, args)
            print(shape, dtype_name, "done", flush=True)
    return rows


def _norm_errors(fn, x, w, bias, groups) -> dict:
    leaves = [t.clone().requires_grad_() for t in (x, w, bias)]
    out = fn(*leaves)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref_leaves = [t.double().requires_grad_() for t in (x, w, bias)]
    ref = F.silu(F.group_norm(ref_leaves[0], groups, ref_leaves[1], ref_leaves[2], 1e-5))
    ref.backward(grad.double())
    errors = {"out_err": float((out.detach().double() - ref.detach()).abs().max())}
    for name, mine, theirs in zip(("dx", "dw", "db"), leaves, ref_leaves):
        errors[f"{name}_err"] = float((mine.grad.double() - theirs.grad).abs().max())
    return errors


def _time_norm(rows, fns, x, w, bias, args) -> None:
    leaves = [t.clone().requires_grad_() for t in (x, w, bias)]

    def fwd(fn):
        def run():
            with torch.no_grad():
                fn(x, w, bias)

        return run

    def fwd_bwd(fn):
        def run():
            fn(*leaves).sum().backward()
            for t in leaves:
                t.grad = None

        return run

    f = compare({n: fwd(fn) for n, fn in fns.items()}, reference="eager", device=args.device,
                warmup=2, repeat=args.repeat)  # fmt: skip
    fb = compare({n: fwd_bwd(fn) for n, fn in fns.items()}, reference="eager",
                 device=args.device, warmup=2, repeat=args.repeat)  # fmt: skip
    for row, name in zip(rows, fns):
        row.update(
            fwd_ms=1e3 * f[name]["time_s"],
            fwd_vs_eager=f[name]["ratio"],
            fwd_bwd_ms=1e3 * fb[name]["time_s"],
            fwd_bwd_vs_eager=fb[name]["ratio"],
        )


def unet_rows(args) -> list[dict]:
    """SD 1.5 UNet at 64x64 latents (the tiny SD UNet with --tiny): sampling and training step."""
    from diffrepro.core.kernels.backend import attention_backend
    from diffrepro.core.models.sd_tiny import TINY_UNET
    from diffrepro.core.models.sd_unet import UNet2DConditionConfig, UNet2DConditionModel

    config = (
        TINY_UNET if args.tiny else UNet2DConditionConfig(sample_size=64, cross_attention_dim=768)
    )
    torch.manual_seed(0)
    model32 = UNet2DConditionModel(config).to(args.device).eval()
    dtype = DTYPES[args.dtypes[0]]
    model = UNet2DConditionModel(config).to(args.device, dtype).eval()
    model.load_state_dict(model32.state_dict())
    size, tokens = config.sample_size, 77
    g = torch.Generator(device=args.device).manual_seed(0)
    x = torch.randn(2, 4, size, size, generator=g, device=args.device)
    t = torch.tensor([999, 999], device=args.device)
    ctx = torch.randn(2, tokens, config.cross_attention_dim, generator=g, device=args.device)
    with torch.no_grad():
        ref = model32(x, t, ctx)
    rows = []
    for backend in ("auto", "sdpa"):
        with torch.no_grad(), attention_backend(backend):
            out = model(x.to(dtype), t, ctx.to(dtype))
        err = float((out.float() - ref).abs().max() / ref.abs().max())
        name = "tiny SD UNet" if args.tiny else "SD1.5 UNet"
        rows.append(
            {"model": name, "dtype": args.dtypes[0], "attention": backend, "rel_err_vs_fp32": err}
        )
    if args.check_only:
        return rows

    def sample_step(backend):
        def run():
            with torch.no_grad(), attention_backend(backend):
                model(x.to(dtype), t, ctx.to(dtype))

        return run

    def train_step(backend):
        def run():
            with attention_backend(backend):
                model(x[:1].to(dtype), t[:1], ctx[:1].to(dtype)).float().square().mean().backward()
            model.zero_grad(set_to_none=True)

        return run

    s = compare({b: sample_step(b) for b in ("sdpa", "auto")}, reference="sdpa",
                device=args.device, warmup=2, repeat=args.repeat)  # fmt: skip
    tr = compare({b: train_step(b) for b in ("sdpa", "auto")}, reference="sdpa",
                 device=args.device, warmup=2, repeat=max(3, args.repeat // 2))  # fmt: skip
    for row in rows:
        b = row["attention"]
        row.update(
            sample_step_b2_ms=1e3 * s[b]["time_s"],
            sample_vs_sdpa=s[b]["ratio"],
            train_step_b1_ms=1e3 * tr[b]["time_s"],
            train_vs_sdpa=tr[b]["ratio"],
            train_peak_mib=peak_memory(train_step(b), device=args.device) / 2**20,
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_bench: --device cuda but no CUDA device is visible")
    start = time.perf_counter()
    results = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "attention": attention_rows(args),
        "group_norm_silu": norm_rows(args),
        "unet": [] if args.no_unet else unet_rows(args),
    }
    timed = [r for r in results["attention"] if r["backend"] == "auto" and "fwd_vs_sdpa" in r]
    results["auto_vs_sdpa_max"] = max(
        (max(r["fwd_vs_sdpa"], r["fwd_bwd_vs_sdpa"]) for r in timed), default=None
    )
    results["seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(results, indent=2))
    for part in ("attention", "group_norm_silu", "unet"):
        write_results(f"gpu_{part}", results[part], out_dir=args.out, notes=_NOTE)
    print(f"gpu_bench: {results['seconds']} s; auto/sdpa max {results['auto_vs_sdpa_max']}")
    print(f"results: {args.out / 'gpu.json'}")
    return results


_NOTE = (
    "Errors are max abs differences to float64 math on the same inputs (attention: first batch "
    "element and head); times are medians of interleaved repeats (CUDA-synchronised), ratios "
    "against sdpa (attention, UNet) or eager (GroupNorm+SiLU)."
)

if __name__ == "__main__":
    main()
