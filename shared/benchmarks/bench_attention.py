"""Attention backends at the shapes of SD 1.x (512 px) and of a 256 px ADM UNet.

Times the forward and the forward+backward of each available backend (triton, sdpa, math) and,
on CUDA, their peak memory; ratios are against sdpa measured in the same process. On CUDA the
inputs are fp16 with SD's batch of 2 (classifier-free guidance) and 8 heads. Without CUDA the
triton rows say "needs CUDA" (the interpreter says nothing about speed) and batch and heads are
reduced to 1 so the run stays under a minute; token counts and head dims are unchanged.

Run: ``python shared/benchmarks/bench_attention.py`` (writes runs/bench/attention.{json,md}).
"""

from __future__ import annotations

import torch

from diffrepro.core.attention import attention
from diffrepro.core.benchmark import measure, write_results
from diffrepro.core.kernels.backend import triton_attention_problem

# name, query tokens, key tokens, heads, head_dim (heads on CUDA; 1 on CPU)
SHAPES = [
    ("SD1 64x64 self, d=40", 4096, 4096, 8, 40),
    ("SD1 64x64 self, d=80", 4096, 4096, 8, 80),
    ("SD1 64x64 self, d=160", 4096, 4096, 8, 160),
    ("SD1 64x64 cross (77 keys), d=40", 4096, 77, 8, 40),
    ("SD1 32x32 cross (77 keys), d=80", 1024, 77, 8, 80),
    ("SD1 16x16 cross (77 keys), d=160", 256, 77, 8, 160),
    ("ADM-256 32x32 self, d=64", 1024, 1024, 8, 64),
    ("ADM-256 16x16 self, d=64", 256, 256, 16, 64),
]
BACKENDS = ("sdpa", "triton", "math")


def _inputs(batch: int, heads: int, nq: int, nk: int, d: int, device: str, dtype: torch.dtype):
    g = torch.Generator(device=device).manual_seed(0)
    return [
        torch.randn(batch, heads, n, d, generator=g, device=device, dtype=dtype, requires_grad=True)
        for n in (nq, nk, nk)
    ]


def _row(name: str, backend: str, q, k, v, device: str, repeat: int) -> dict:
    row = {"shape": name, "backend": backend, "q": "x".join(map(str, q.shape)), "keys": k.shape[2]}
    if backend == "triton":
        problem = triton_attention_problem(q, k, v) if device == "cuda" else "needs CUDA"
        if problem is not None:
            return {**row, "note": problem}

    def forward():
        with torch.no_grad():
            attention(q, k, v, backend=backend)

    def forward_backward():
        attention(q, k, v, backend=backend).sum().backward()
        q.grad = k.grad = v.grad = None

    fwd = measure(forward, device=device, repeat=repeat)
    both = measure(forward_backward, device=device, repeat=repeat)
    peak = both["peak_mem_bytes"]
    return {
        **row,
        "fwd_ms": 1e3 * fwd["time_s"],
        "fwd_bwd_ms": 1e3 * both["time_s"],
        "peak_mib": None if peak is None else peak / 2**20,
    }


def _add_ratios(rows: list[dict]) -> None:
    reference = {r["shape"]: r for r in rows if r["backend"] == "sdpa"}
    for row in rows:
        ref = reference[row["shape"]]
        if "fwd_ms" in row:
            row["fwd_vs_sdpa"] = row["fwd_ms"] / ref["fwd_ms"]
            row["fwd_bwd_vs_sdpa"] = row["fwd_bwd_ms"] / ref["fwd_bwd_ms"]


def main() -> None:
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.float16) if cuda else ("cpu", torch.float32)
    rows = []
    for name, nq, nk, heads, d in SHAPES:
        batch, heads = (2, heads) if cuda else (1, 1)
        q, k, v = _inputs(batch, heads, nq, nk, d, device, dtype)
        rows += [
            _row(name, backend, q, k, v, device, repeat=10 if cuda else 2) for backend in BACKENDS
        ]
    _add_ratios(rows)
    scale = (
        "fp16, batch 2, full heads"
        if cuda
        else "CPU fp32, batch 1 and 1 head (reduced), triton not timed"
    )
    notes = f"Attention backends ({scale}); times are medians, ratios are against sdpa in this run."
    print(write_results("attention", rows, notes=notes).read_text())


if __name__ == "__main__":
    main()
