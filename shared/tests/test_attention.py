"""The attention entry point: backends agree, dispatch rules, forcing, errors, probability hooks."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from diffrepro.core import kernels
from diffrepro.core.attention import attention, attention_backend, attention_probs
from diffrepro.core.kernels.backend import ENV_VAR, select_attention_backend


def _qkv(nq=5, nk=7, d=8, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, n, d, generator=g, dtype=dtype) for n in (nq, nk, nk)]


def _reference(q, k, v, bias, scale):
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) * scale
    if bias is not None:
        scores = scores + bias
    return torch.einsum("bhqk,bhkd->bhqd", torch.softmax(scores, -1), v)


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_backends_match_reference_with_cross_attention_and_broadcast_bias(backend):
    q, k, v = _qkv()
    bias = torch.randn(1, 3, 1, 7, dtype=torch.float64)
    out = attention(q, k, v, bias=bias, scale=0.3, backend=backend)
    torch.testing.assert_close(out, _reference(q, k, v, bias, 0.3))


def test_default_scale_is_inverse_sqrt_head_dim():
    q, k, v = _qkv(d=16)
    torch.testing.assert_close(attention(q, k, v, backend="math"), _reference(q, k, v, None, 0.25))


def test_math_keeps_float64_and_half_softmax_in_float32():
    q, k, v = _qkv()
    assert attention(q, k, v, backend="math").dtype == torch.float64
    probs = attention_probs(*(t.half() for t in (q, k)))
    assert probs.dtype == torch.float16
    expected = attention_probs(q.half().double(), k.half().double())
    torch.testing.assert_close(probs.double(), expected, atol=1e-3, rtol=0)


def test_boolean_mask_means_attend_where_true():
    q, k, v = _qkv()
    mask = torch.ones(7, dtype=torch.bool)
    mask[4:] = False
    expected = attention(q, k[:, :, :4], v[:, :, :4], backend="math")
    for backend in ("sdpa", "math"):
        torch.testing.assert_close(attention(q, k, v, bias=mask, backend=backend), expected)


def test_bias_gradient_flows_through_sdpa_and_math():
    q, k, v = _qkv()
    grads = []
    for backend in ("sdpa", "math"):
        bias = torch.zeros(1, 1, 5, 7, dtype=torch.float64, requires_grad=True)
        attention(q, k, v, bias=bias, backend=backend).square().sum().backward()
        grads.append(bias.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])


def test_probs_hook_reads_probabilities():
    q, k, v = _qkv()
    seen = []
    out = attention(q, k, v, probs_hook=seen.append)
    (probs,) = seen
    assert probs.shape == (2, 3, 5, 7)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))
    torch.testing.assert_close(probs, attention_probs(q, k))
    torch.testing.assert_close(out, probs @ v)


def test_probs_hook_replaces_probabilities():
    q, k, v = _qkv()
    uniform = attention(q, k, v, probs_hook=lambda p: torch.full_like(p, 1 / 7))
    torch.testing.assert_close(uniform, v.mean(2, keepdim=True).expand_as(uniform))


def test_probs_hook_refuses_a_fused_backend():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="math"):
        attention(q, k, v, backend="sdpa", probs_hook=lambda p: None)


def test_auto_picks_sdpa_on_cpu_even_under_the_interpreter():
    q, k, v = _qkv(dtype=torch.float32)
    assert select_attention_backend(q, k, v) == "sdpa"


def test_context_manager_nests_and_restores(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    q, k, v = _qkv()
    with attention_backend("math"):
        assert select_attention_backend(q, k, v) == "math"
        with attention_backend("sdpa"):
            assert select_attention_backend(q, k, v) == "sdpa"
        assert select_attention_backend(q, k, v) == "math"
        assert select_attention_backend(q, k, v, "sdpa") == "sdpa"  # an explicit argument wins
    assert select_attention_backend(q, k, v) == "sdpa"


def test_env_var_forces_a_backend_and_context_overrides_it(monkeypatch):
    q, k, v = _qkv()
    monkeypatch.setenv(ENV_VAR, "math")
    assert select_attention_backend(q, k, v) == "math"
    with attention_backend("auto"):  # a context is more specific than the env var
        assert select_attention_backend(q, k, v) == "sdpa"
    with attention_backend("sdpa"):
        assert select_attention_backend(q, k, v) == "sdpa"
    monkeypatch.setenv(ENV_VAR, "fast")
    with pytest.raises(ValueError, match=ENV_VAR):
        select_attention_backend(q, k, v)


def test_unknown_backend_is_a_clear_error():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="unknown attention backend"):
        attention(q, k, v, backend="flash")
    with pytest.raises(ValueError, match="unknown attention backend"), attention_backend("flash"):
        pass


def test_forced_triton_where_it_cannot_run_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v = _qkv(dtype=torch.float32)
    with pytest.raises(ValueError, match="triton.*(CUDA|not installed)"):
        attention(q, k, v, backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(ValueError, match="dtypes"):
        attention(*_qkv(dtype=torch.float64), backend="triton")
    with pytest.raises(ValueError, match="head_dim 160"):
        attention(*_qkv(d=160, dtype=torch.float32), backend="triton")


def test_bad_shapes_are_clear_errors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="batch, heads, tokens, head_dim"):
        attention(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="do not match"):
        attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="does not broadcast"):
        attention(q, k, v, bias=torch.zeros(5, 5, dtype=torch.float64))


def test_importing_attention_and_kernels_does_not_import_triton():
    code = "import sys, diffrepro.core.attention, diffrepro.core.kernels\n"
    code += "assert 'triton' not in sys.modules, 'triton was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("weight", [True, False])
def test_group_norm_silu_fallback_matches_torch(weight):
    x = torch.randn(2, 6, 4, 5, dtype=torch.float16)
    w, b = (torch.randn(6), torch.randn(6)) if weight else (None, None)
    out = kernels.group_norm_silu(x, 3, w, b)
    assert out.dtype == torch.float16
    w64, b64 = (None, None) if w is None else (w.double(), b.double())
    expected = F.silu(F.group_norm(x.double(), 3, w64, b64))
    torch.testing.assert_close(out.double(), expected, atol=2e-3, rtol=0)


def test_group_norm_silu_rejects_groups_that_do_not_divide_channels():
    with pytest.raises(ValueError, match="groups"):
        kernels.group_norm_silu(torch.randn(1, 6, 4), 4, None, None)
