import math

import pytest
import torch

from diffrepro.core.nn import (
    AttentionBlock,
    Downsample,
    GroupNorm32,
    ResBlock,
    Upsample,
    norm_silu,
    timestep_embedding,
    zero_module,
)


def test_timestep_embedding_adm_order_matches_formula() -> None:
    t = torch.tensor([0.0, 3.0, 999.0])
    emb = timestep_embedding(t, 6)
    freqs = [10000 ** (-i / 3) for i in range(3)]
    expected = [
        [math.cos(s * f) for f in freqs] + [math.sin(s * f) for f in freqs] for s in t.tolist()
    ]
    torch.testing.assert_close(emb, torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_timestep_embedding_sin_first_shift_and_odd_dim() -> None:
    t = torch.tensor([7.0])
    emb = timestep_embedding(t, 9, cos_first=False, freq_shift=1.0)
    freqs = [10000 ** (-i / 3) for i in range(4)]  # half - shift = 4 - 1
    expected = [math.sin(7 * f) for f in freqs] + [math.cos(7 * f) for f in freqs] + [0.0]
    torch.testing.assert_close(emb[0], torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_group_norm32_keeps_dtype_and_norm_silu_matches() -> None:
    torch.manual_seed(0)
    norm = GroupNorm32(2, 4)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(2, 4, 5, 5)
    assert norm(x.half()).dtype == torch.float16
    torch.testing.assert_close(norm_silu(norm, x), torch.nn.functional.silu(norm(x)))


def test_resample_shapes_and_no_conv_variants() -> None:
    x = torch.randn(1, 4, 8, 8)
    assert Upsample(4, True, 6)(x).shape == (1, 6, 16, 16)
    assert Downsample(4, True, 6)(x).shape == (1, 6, 4, 4)
    torch.testing.assert_close(Downsample(4, False)(x), torch.nn.functional.avg_pool2d(x, 2))
    torch.testing.assert_close(Upsample(4, False)(x)[..., ::2, ::2], x)
    with pytest.raises(ValueError, match="channel count"):
        Downsample(4, False, 6)


def test_resblock_parameter_names_and_identity_at_init() -> None:
    torch.manual_seed(0)
    block = ResBlock(4, 8, out_channels=8, use_scale_shift_norm=True, num_groups=2)
    names = set(dict(block.named_parameters()))
    assert {
        "in_layers.0.weight",
        "in_layers.2.weight",
        "emb_layers.1.weight",
        "out_layers.0.weight",
    } <= names
    assert {"out_layers.3.weight", "skip_connection.weight"} <= names
    assert block.emb_layers[1].out_features == 16
    x, emb = torch.randn(2, 4, 6, 6), torch.randn(2, 8)
    torch.testing.assert_close(block(x, emb), block.skip_connection(x))  # zero-initialised out conv


@pytest.mark.parametrize("scale_shift", [True, False])
@pytest.mark.parametrize("updown", [{}, {"up": True}, {"down": True}])
def test_resblock_matches_reference_computation(scale_shift: bool, updown: dict) -> None:
    torch.manual_seed(1)
    block = ResBlock(4, 8, out_channels=6, use_scale_shift_norm=scale_shift, num_groups=2, **updown)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x, emb = torch.randn(2, 4, 8, 8), torch.randn(2, 8)
    F = torch.nn.functional
    resize = (lambda z: F.interpolate(z, scale_factor=2.0)) if updown.get("up") else None
    resize = (lambda z: F.avg_pool2d(z, 2)) if updown.get("down") else resize
    resize = resize or (lambda z: z)
    g_in, conv_in = block.in_layers[0], block.in_layers[2]
    g_out, conv_out = block.out_layers[0], block.out_layers[3]
    h = conv_in(resize(F.silu(F.group_norm(x, 2, g_in.weight, g_in.bias))))
    e = F.linear(F.silu(emb), block.emb_layers[1].weight, block.emb_layers[1].bias)[..., None, None]
    if scale_shift:
        scale, shift = e[:, :6], e[:, 6:]
        h = F.group_norm(h, 2, g_out.weight, g_out.bias) * (1 + scale) + shift
    else:
        h = F.group_norm(h + e, 2, g_out.weight, g_out.bias)
    expected = block.skip_connection(resize(x)) + conv_out(F.silu(h))
    torch.testing.assert_close(block(x, emb), expected, rtol=1e-5, atol=1e-5)


def _adm_legacy_attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """guided-diffusion's QKVAttentionLegacy, written from its description (per-head [q, k, v])."""
    b, width, n = qkv.shape
    d = width // (3 * heads)
    q, k, v = qkv.reshape(b * heads, 3 * d, n).split(d, dim=1)
    s = 1 / math.sqrt(math.sqrt(d))
    w = torch.einsum("bct,bcs->bts", q * s, k * s).softmax(dim=-1)
    return torch.einsum("bts,bcs->bct", w, v).reshape(b, -1, n)


def _adm_new_attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """guided-diffusion's QKVAttention: q, k, v are the three thirds of the channels."""
    b, width, n = qkv.shape
    d = width // (3 * heads)
    q, k, v = (z.reshape(b * heads, d, n) for z in qkv.chunk(3, dim=1))
    w = torch.einsum("bct,bcs->bts", q, k).div(math.sqrt(d)).softmax(dim=-1)
    return torch.einsum("bts,bcs->bct", w, v).reshape(b, -1, n)


@pytest.mark.parametrize("new_order", [False, True])
def test_attention_block_matches_adm_head_orders(new_order: bool) -> None:
    torch.manual_seed(2)
    block = AttentionBlock(8, num_head_channels=4, use_new_attention_order=new_order, num_groups=2)
    torch.nn.init.normal_(block.proj_out.weight)
    x = torch.randn(2, 8, 3, 5)
    tokens = x.reshape(2, 8, -1)
    reference = _adm_new_attention if new_order else _adm_legacy_attention
    h = reference(block.qkv(block.norm(tokens)), 2)
    expected = (tokens + block.proj_out(h)).reshape(x.shape)
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_attention_block_bias() -> None:
    torch.manual_seed(3)
    block = AttentionBlock(4, num_heads=2, num_groups=2)
    torch.nn.init.normal_(block.proj_out.weight)
    x = torch.randn(1, 4, 2, 3)
    torch.testing.assert_close(block(x, torch.zeros(1, 1, 1, 6)), block(x))
    # -inf on every key but key 0: each query copies value 0.
    bias = torch.full((1, 1, 1, 6), float("-inf"))
    bias[..., 0] = 0.0
    q, k, v = block.split_heads(block.qkv(block.norm(x.reshape(1, 4, 6))))
    copied = v[:, :, :1].expand(-1, -1, 6, -1).permute(0, 1, 3, 2).reshape(1, 4, 6)
    expected = x.reshape(1, 4, 6) + block.proj_out(copied)
    torch.testing.assert_close(block(x, bias), expected.reshape(x.shape), rtol=1e-5, atol=1e-5)


def test_zero_module_and_clear_errors() -> None:
    conv = zero_module(torch.nn.Conv2d(2, 2, 3))
    assert all(bool((p == 0).all()) for p in conv.parameters())
    with pytest.raises(ValueError, match="groups"):
        ResBlock(6, 4, num_groups=4)
    with pytest.raises(ValueError, match="num_head_channels"):
        AttentionBlock(8, num_head_channels=3, num_groups=2)


def test_group_norm32_keeps_float64_and_upcasts_half() -> None:
    from diffrepro.core.nn import GroupNorm32

    norm = GroupNorm32(2, 4).double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    expected = torch.nn.functional.group_norm(x, 2, norm.weight, norm.bias, norm.eps)
    assert norm(x).dtype == torch.float64
    torch.testing.assert_close(norm(x), expected, rtol=0, atol=1e-12)
    half = GroupNorm32(2, 4)(x.half())
    assert half.dtype == torch.float16
