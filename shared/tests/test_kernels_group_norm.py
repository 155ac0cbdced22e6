"""The fused GroupNorm+SiLU Triton kernel, run by Triton's interpreter on CPU (conftest sets
TRITON_INTERPRET=1 without CUDA): forward and backward against float64 torch, opcheck, dispatch."""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from diffrepro.core.attention import attention_backend  # noqa: E402
from diffrepro.core.kernels import group_norm_silu  # noqa: E402
from diffrepro.core.kernels.backend import triton_device_problem  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if triton_device_problem(DEVICE) is not None:
    pytest.skip(f"triton cannot run here: {triton_device_problem(DEVICE)}", allow_module_level=True)

from diffrepro.core.kernels.fused_group_norm import (  # noqa: E402
    group_norm_silu_bwd,
    group_norm_silu_fwd,
    group_norm_silu_triton,
)

TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}

CASES = [
    # shape, groups, dtype, affine
    ((2, 6, 5, 7), 3, torch.float32, True),
    ((1, 64, 6, 6), 32, torch.float16, True),  # guided-diffusion's 32 groups
    (
        (2, 40, 9),
        4,
        torch.float32,
        False,
    ),  # 1-D positions, 10 channels per group (not a power of 2)
    ((1, 8, 33, 33), 1, torch.float32, True),  # one group spanning several tiles
    ((2, 12, 3, 4, 5), 4, torch.bfloat16, True),  # 3-D positions (video)
]


def _assert_close(actual, expected, dtype, what):
    scale = max(1.0, expected.abs().max().item())
    err = (actual.double() - expected).abs().max().item()
    assert err <= TOLERANCE[dtype] * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{'x'.join(map(str, c[0]))}-g{c[1]}-{str(c[2])[6:]}"
)
def test_forward_and_backward_match_float64(case):
    shape, groups, dtype, affine = case
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g) * 3 + 1).to(DEVICE, dtype).requires_grad_()
    channels = shape[1]
    weight, bias = (
        (torch.randn(2, channels, generator=g).to(DEVICE).unbind(0)) if affine else (None, None)
    )
    params = [t.requires_grad_() for t in (weight, bias) if t is not None]
    y = group_norm_silu_triton(x, groups, weight, bias, 1e-5)
    assert y.shape == x.shape and y.dtype == dtype
    grad_y = torch.randn(shape, generator=g).to(DEVICE, dtype)
    y.backward(grad_y)

    leaves = [t.detach().double().requires_grad_() for t in [x, *params]]
    w64, b64 = (leaves[1], leaves[2]) if affine else (None, None)
    expected = F.silu(F.group_norm(leaves[0], groups, w64, b64, 1e-5))
    expected.backward(grad_y.double())
    _assert_close(y, expected, dtype, "y")
    for name, leaf, ref in zip(("x", "weight", "bias"), [x, *params], leaves):
        _assert_close(leaf.grad, ref.grad, dtype, f"d{name}")


def test_public_entry_dispatches_to_the_kernel_when_forced():
    x = torch.randn(2, 8, 6, 6, device=DEVICE)
    weight, bias = torch.randn(8, device=DEVICE), torch.randn(8, device=DEVICE)
    with attention_backend("triton"):
        forced = group_norm_silu(x, 4, weight, bias)
    torch.testing.assert_close(
        forced, group_norm_silu_triton(x, 4, weight, bias, 1e-5), atol=0, rtol=0
    )
    torch.testing.assert_close(
        group_norm_silu(x, 4, weight, bias, backend="math"), forced, atol=1e-5, rtol=0
    )


def test_opcheck_forward_and_backward_ops():
    x = torch.randn(2, 6, 5, 3, device=DEVICE)
    weight, bias = torch.randn(6, device=DEVICE), torch.randn(6, device=DEVICE)
    torch.library.opcheck(group_norm_silu_fwd, (x, weight, bias, 3, 1e-5))
    _, mean, rstd = group_norm_silu_fwd(x, weight, bias, 3, 1e-5)
    torch.library.opcheck(
        group_norm_silu_bwd, (torch.randn_like(x), x, weight, bias, mean, rstd, 3)
    )


def test_kernel_module_does_not_shadow_the_public_function():
    import diffrepro.core.kernels as kernels

    assert kernels.group_norm_silu is group_norm_silu and callable(kernels.group_norm_silu)
