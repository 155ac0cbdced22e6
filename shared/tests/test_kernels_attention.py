"""The Triton attention kernels, run by Triton's interpreter on CPU (conftest sets
TRITON_INTERPRET=1 without CUDA): forward against the math backend, backward against float64
autograd, torch.library opcheck, and torch.compile."""

import pytest
import torch

pytest.importorskip("triton")

from diffrepro.core.attention import attention, attention_backend  # noqa: E402
from diffrepro.core.kernels.backend import triton_device_problem  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if triton_device_problem(DEVICE) is not None:
    pytest.skip(f"triton cannot run here: {triton_device_problem(DEVICE)}", allow_module_level=True)

from diffrepro.core.kernels.flash_attention import (  # noqa: E402
    flash_attention,
    flash_attn_bwd,
    flash_attn_fwd,
)

TOLERANCE = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}
if DEVICE.type == "cuda":
    TOLERANCE[torch.float32] = 1e-4

# A covering subset of (Nq, Nk, head_dim, bias, dtype): every token count in {1, 15, 77, 100, 257}
# appears on both axes, every head dim in {32, 40, 64, 72, 80, 128}, with and without bias, fp32
# and fp16.
CASES = [
    # batch, heads, Nq, Nk, head_dim, bias shape (None: no bias), dtype
    (1, 2, 15, 77, 40, (1, 2, 15, 77), torch.float32),
    (2, 1, 100, 1, 72, None, torch.float16),
    (1, 1, 257, 15, 80, (1, 1, 257, 15), torch.float16),
    (1, 2, 1, 257, 128, None, torch.float32),
    (1, 1, 77, 100, 32, None, torch.float32),
    (
        2,
        2,
        100,
        77,
        64,
        (2, 1, 1, 77),
        torch.float16,
    ),  # a per-key bias, broadcast over heads and queries
]


def _inputs(batch, heads, nq, nk, d, bias_shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, n, d, generator=g) for n in (nq, nk, nk))
    bias = None if bias_shape is None else torch.randn(bias_shape, generator=g)
    return [None if t is None else t.to(DEVICE, dtype) for t in (q, k, v, bias)]


def _grads_float64(q, k, v, bias, grad_out, scale):
    leaves = [None if t is None else t.detach().double().requires_grad_() for t in (q, k, v, bias)]
    out = attention(*leaves[:3], bias=leaves[3], scale=scale, backend="math")
    out.backward(grad_out.double())
    return out, [None if t is None else t.grad for t in leaves]


def _assert_close(actual, expected, dtype, what):
    scale = max(1.0, expected.abs().max().item())
    err = (actual.double() - expected).abs().max().item()
    assert err <= TOLERANCE[dtype] * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=lambda c: f"q{c[2]}-k{c[3]}-d{c[4]}-{'bias' if c[5] else 'nobias'}-{str(c[6])[6:]}",
)
def test_forward_and_backward_match_float64(case):
    dtype = case[-1]
    q, k, v, bias = _inputs(*case)
    leaves = [None if t is None else t.requires_grad_() for t in (q, k, v, bias)]
    scale = q.shape[-1] ** -0.5
    out = attention(q, k, v, bias=bias, backend="triton")
    assert out.dtype == dtype and out.shape == q.shape
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    expected, expected_grads = _grads_float64(q, k, v, bias, grad_out, scale)
    _assert_close(out, expected, dtype, "out")
    for name, leaf, grad in zip(["q", "k", "v", "bias"], leaves, expected_grads):
        if leaf is not None:
            assert leaf.grad.shape == leaf.shape and leaf.grad.dtype == leaf.dtype
            _assert_close(leaf.grad, grad, dtype, f"d{name}")


def test_bfloat16_runs_with_upcast_under_the_interpreter():
    q, k, v, bias = _inputs(1, 1, 20, 33, 40, (1, 1, 20, 33), torch.bfloat16)
    q.requires_grad_()
    out = attention(q, k, v, bias=bias, backend="triton")
    out.backward(torch.ones_like(out))
    expected, grads = _grads_float64(q, k, v, bias, torch.ones_like(out), 40**-0.5)
    _assert_close(out, expected, torch.bfloat16, "out")
    _assert_close(q.grad, grads[0], torch.bfloat16, "dq")


def test_strided_views_and_custom_scale():
    # (B, N, H, d) tensors viewed as (B, H, N, d), as a rearrange from a projection produces them
    g = torch.Generator().manual_seed(1)
    q, k, v = (
        torch.randn(2, n, 3, 24, generator=g).to(DEVICE).transpose(1, 2) for n in (30, 17, 17)
    )
    out = attention(q, k, v, scale=0.5, backend="triton")
    expected = attention(q.double(), k.double(), v.double(), scale=0.5, backend="math")
    _assert_close(out, expected, torch.float32, "out")


def test_fully_masked_rows_give_zeros_and_finite_gradients():
    q, k, v, _ = _inputs(1, 1, 20, 40, 16, None, torch.float32)
    bias = torch.zeros(1, 1, 20, 40, device=DEVICE)
    bias[..., 5, :] = -torch.inf  # query 5 may attend to nothing
    bias[..., 10:] = -torch.inf  # and no query may attend to keys 10..39
    q.requires_grad_()
    k.requires_grad_()
    out = attention(q, k, v, bias=bias, backend="triton")
    out.sum().backward()
    assert torch.all(out[..., 5, :] == 0)
    assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()
    assert torch.all(k.grad[..., 10:, :] == 0)
    keep = [i for i in range(20) if i != 5]
    expected = attention(
        q[..., keep, :].double(), k[..., :10, :].double(), v[..., :10, :].double(), backend="math"
    )
    _assert_close(out[..., keep, :], expected, torch.float32, "out")


def test_context_manager_routes_auto_to_triton():
    q, k, v, _ = _inputs(1, 1, 9, 9, 16, None, torch.float32)
    with attention_backend("triton"):
        out = attention(q, k, v)
    torch.testing.assert_close(out, flash_attention(q, k, v, None, 0.25), atol=0, rtol=0)


def test_opcheck_forward_and_backward_ops():
    q, k, v, bias = _inputs(1, 2, 17, 23, 40, (1, 2, 17, 23), torch.float32)
    scale = 40**-0.5
    torch.library.opcheck(flash_attn_fwd, (q, k, v, bias, scale))
    torch.library.opcheck(flash_attn_fwd, (q, k, v, None, scale))
    out, lse = flash_attn_fwd(q, k, v, bias, scale)
    grad = torch.randn_like(out)
    torch.library.opcheck(flash_attn_bwd, (grad, q, k, v, bias, out, lse, scale, True))
    torch.library.opcheck(flash_attn_bwd, (grad, q, k, v, None, out, lse, scale, False))


def test_torch_compile_fullgraph_forward_and_backward():
    # The graph is the custom op alone (full-shape bias, fp32), so inductor has no C++ to build.
    torch._dynamo.reset()
    q, k, v, bias = _inputs(1, 2, 12, 20, 32, (1, 2, 12, 20), torch.float32)
    q.requires_grad_()
    bias.requires_grad_()
    grad_out = torch.randn_like(q)

    def attend(q, k, v, bias):
        return attention(q, k, v, bias=bias, scale=0.2, backend="triton")

    def run(fn):
        out = fn(q, k, v, bias)
        out.backward(grad_out)
        grads = (q.grad, bias.grad)
        q.grad = bias.grad = None
        return out, grads

    try:
        compiled = run(torch.compile(attend, fullgraph=True))
    except Exception as error:  # the CPU inductor needs a working C++ compiler
        if "CppCompileError" in type(error).__name__ or "C++ compiler" in str(error):
            pytest.skip(f"the CPU inductor cannot compile here: {type(error).__name__}")
        raise
    torch.testing.assert_close(compiled, run(attend))
