"""The adapter's equations (spec §3.3) against a float64 numpy re-implementation, its closed-form
parameter count and its zero-initialised time scale."""

import numpy as np
import pytest
import torch

from diffrepro.limited_data_ft.adapter import TimeAwareAdapter, adapter_param_count


def numpy_adapter(h, e, p, *, kv_source, gain, rank):
    """The spec's equations written out in numpy (float64), from the effective weights."""
    w = {k: v * gain for k, v in p.items()}
    silu = lambda z: z / (1 + np.exp(-z))  # noqa: E731
    mu = h.mean(-1, keepdims=True)
    var = ((h - mu) ** 2).mean(-1, keepdims=True)
    x = (h - mu) / np.sqrt(var + 1e-5) * w["ln_weight"] + w["ln_bias"]
    g = x @ w["w_down"].T + (silu(e) @ w["w_time"].T)[:, None, :]
    src = g if kv_source == "fused" else x
    q, k, v = g @ w["w_q"].T, src @ w["w_k"].T, src @ w["w_v"].T
    logits = q @ k.transpose(0, 2, 1) / np.sqrt(rank)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    a = probs @ v
    s = silu(e) @ w["w_scale"].T + w["b_scale"]
    return s[:, None, :] * (a @ w["w_up"].T)


@pytest.mark.parametrize("kv_source", ["fused", "features"])
@pytest.mark.parametrize("scale", ["scalar", "vector"])
@pytest.mark.parametrize("out", [None, 10])
def test_adapter_matches_numpy_reference(kv_source, scale, out):
    gen = torch.Generator().manual_seed(0)
    adapter = TimeAwareAdapter(
        6, 5, 3, out, kv_source=kv_source, scale=scale, gain=2.5, generator=gen
    ).double()
    with torch.no_grad():  # random non-zero values everywhere, incl. the zero-initialised scale
        for p in adapter.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    h = torch.randn(2, 7, 6, generator=gen, dtype=torch.float64)
    e = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    params = {n: p.detach().numpy() for n, p in adapter.named_parameters()}
    want = numpy_adapter(h.numpy(), e.numpy(), params, kv_source=kv_source, gain=2.5, rank=3)
    got = adapter(h, e).detach().numpy()
    assert got.shape == (2, 7, out or 6)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kv_source", ["fused", "features"])
@pytest.mark.parametrize("scale", ["scalar", "vector"])
@pytest.mark.parametrize("ln_affine", [True, False])
@pytest.mark.parametrize("out", [None, 24])
def test_parameter_count_is_the_closed_form(kv_source, scale, ln_affine, out):
    c, d, r = 16, 40, 5
    adapter = TimeAwareAdapter(c, d, r, out, kv_source=kv_source, scale=scale, ln_affine=ln_affine)
    numel = sum(p.numel() for p in adapter.parameters())
    assert numel == adapter_param_count(
        c, d, r, out, kv_source=kv_source, scale=scale, ln_affine=ln_affine
    )


def test_closed_form_is_the_spec_formula():
    c, d, r = 64, 128, 20
    spec = c * r + d * r + 3 * r * r + r * c + d + 1
    assert adapter_param_count(c, d, r, ln_affine=False) == spec
    assert adapter_param_count(c, d, r) == spec + 2 * c


def test_time_scale_is_zero_at_init_so_the_branch_is_exactly_zero():
    adapter = TimeAwareAdapter(8, 12, 4)
    h, e = torch.randn(3, 5, 8), torch.randn(3, 12)
    assert torch.equal(adapter.time_scale(e), torch.zeros(3, 1))
    assert torch.equal(adapter(h, e), torch.zeros(3, 5, 8))
    assert not adapter.w_up.eq(0).all() and not adapter.w_down.eq(0).all()


def test_time_scale_depends_on_the_embedding_once_trained():
    adapter = TimeAwareAdapter(8, 12, 4)
    with torch.no_grad():
        adapter.w_scale.normal_()
    e1, e2 = torch.randn(1, 12), torch.randn(1, 12)
    assert not torch.equal(adapter.time_scale(e1), adapter.time_scale(e2))
    h = torch.randn(1, 5, 8)
    assert torch.equal(adapter(h, e1), adapter(h, e1.clone()))  # same e_t -> same branch


def test_gain_scales_the_effective_weights_not_the_function():
    gen = torch.Generator().manual_seed(1)
    one = TimeAwareAdapter(8, 12, 4, gain=1.0, generator=gen)
    gen = torch.Generator().manual_seed(1)
    ten = TimeAwareAdapter(8, 12, 4, gain=10.0, generator=gen)
    for name, p in one.named_parameters():
        torch.testing.assert_close(ten.weight(name), p, rtol=1e-6, atol=1e-7)


def test_adam_first_step_moves_weights_by_gain_times_lr():
    """AdamW's first step is lr·sign(grad) on the stored tensor, so gain·lr on the weight."""
    adapter = TimeAwareAdapter(8, 12, 4, gain=10.0)
    with torch.no_grad():
        adapter.w_scale.normal_()
    before = adapter.weight("w_up").detach().clone()
    opt = torch.optim.AdamW(adapter.parameters(), lr=1e-4, weight_decay=0.0, eps=1e-30)
    adapter(torch.randn(2, 5, 8), torch.randn(2, 12)).square().sum().backward()
    opt.step()
    moved = (adapter.weight("w_up").detach() - before).abs()
    torch.testing.assert_close(moved, torch.full_like(moved, 1e-3), rtol=1e-3, atol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kv_source": "keys"}, "kv_source"),
        ({"scale": "matrix"}, "scale"),
        ({"gain": 0.0}, "gain"),
        ({"gain": float("nan")}, "gain"),
    ],
)
def test_bad_adapter_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TimeAwareAdapter(8, 12, 4, **kwargs)


def test_bad_rank_and_shapes():
    with pytest.raises(ValueError, match="rank"):
        TimeAwareAdapter(8, 12, 0)
    adapter = TimeAwareAdapter(8, 12, 4)
    with pytest.raises(ValueError, match="tokens"):
        adapter(torch.randn(2, 5, 7), torch.randn(2, 12))
    with pytest.raises(ValueError, match="embeddings"):
        adapter(torch.randn(2, 5, 8), torch.randn(3, 12))
