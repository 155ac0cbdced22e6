"""GPU-only checks of the Triton kernels: bf16, the auto dispatch, determinism of the backward
(a race check). Speed against sdpa lives in shared/benchmarks/bench_attention.py.
Skipped without CUDA."""

import pytest
import torch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
triton = pytest.importorskip("triton")

from diffrepro.core.attention import attention  # noqa: E402
from diffrepro.core.kernels import group_norm_silu  # noqa: E402
from diffrepro.core.kernels.backend import select_attention_backend  # noqa: E402


def _qkv(nq, nk, d, dtype, batch=2, heads=3, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return [
        torch.randn(batch, heads, n, d, generator=g, device="cuda", dtype=dtype)
        for n in (nq, nk, nk)
    ]


def test_auto_picks_triton_on_cuda_up_to_head_dim_128():
    assert select_attention_backend(*_qkv(8, 8, 128, torch.float16)) == "triton"
    assert select_attention_backend(*_qkv(8, 8, 160, torch.float16)) == "sdpa"
    assert select_attention_backend(*_qkv(8, 8, 64, torch.float64)) == "sdpa"


@pytest.mark.parametrize("d", [40, 64, 80, 128])
def test_bfloat16_forward_and_backward(d):
    q, k, v = (t.requires_grad_() for t in _qkv(200, 77, d, torch.bfloat16))
    bias = torch.randn(1, 3, 200, 77, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    out = attention(q, k, v, bias=bias, backend="triton")
    grad = torch.randn_like(out)
    out.backward(grad)
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v, bias)]
    expected = attention(*leaves[:3], bias=leaves[3], backend="math")
    expected.backward(grad.double())
    for actual, ref in zip(
        [out, q.grad, k.grad, v.grad, bias.grad], [expected, *(t.grad for t in leaves)]
    ):
        scale = max(1.0, ref.abs().max().item())
        assert (actual.double() - ref).abs().max().item() <= 2e-2 * scale


@pytest.mark.parametrize("d", [40, 72, 128])
def test_backward_is_bitwise_deterministic(d):
    q, k, v = (t.requires_grad_() for t in _qkv(1000, 1000, d, torch.float16))
    grad = torch.randn_like(q)
    results = []
    for _ in range(10):
        attention(q, k, v, backend="triton").backward(grad)
        results.append(torch.cat([t.grad.flatten() for t in (q, k, v)]))
        q.grad = k.grad = v.grad = None
    for other in results[1:]:
        assert torch.equal(other, results[0])


def test_group_norm_silu_bfloat16_matches_float64():
    x = torch.randn(2, 64, 32, 32, device="cuda", dtype=torch.bfloat16)
    w, b = torch.randn(64, device="cuda"), torch.randn(64, device="cuda")
    out = group_norm_silu(x, 32, w, b, backend="triton")
    expected = group_norm_silu(x.double(), 32, w.double(), b.double(), backend="math")
    assert (out.double() - expected).abs().max() < 3e-2 * max(1.0, expected.abs().max().item())
