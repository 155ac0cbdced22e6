"""Extra coverage of the core with shapes and configurations the component tests do not use.

- The Triton kernels (under ``TRITON_INTERPRET=1`` on CPU, see conftest): attention with odd token
  counts, head dims that are not powers of two, biases broadcast over each axis, non-contiguous
  inputs, custom scales, fp16; GroupNorm+SiLU with odd channel counts, 1-D/3-D positions and
  groups spanning several tiles.
- The ADM pixel UNet: more configurations against guided-diffusion's key rules
  (``official_state_shapes`` of test_unet.py) and its head-count rules.
- SD configs: unsupported diffusers settings are refused with one clear error.
"""

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from diffrepro.core.attention import attention
from diffrepro.core.kernels.backend import triton_device_problem
from diffrepro.core.models.pretrained import config_from_dict
from diffrepro.core.models.sd_unet import UNet2DConditionConfig
from diffrepro.core.models.unet import UNetConfig, UNetModel
from diffrepro.core.nn import AttentionBlock

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
TRITON_PROBLEM = (
    "triton is not installed"
    if importlib.util.find_spec("triton") is None
    else triton_device_problem(DEVICE)
)
needs_triton = pytest.mark.skipif(TRITON_PROBLEM is not None, reason=str(TRITON_PROBLEM))
TOLERANCE = {torch.float32: 2e-5 if DEVICE.type == "cpu" else 1e-4, torch.float16: 3e-3}


def _assert_close(actual, expected, dtype, what):
    scale = max(1.0, expected.abs().max().item())
    err = (actual.double() - expected).abs().max().item()
    assert err <= TOLERANCE[dtype] * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})"


ATTENTION_CASES = [
    # batch, heads, Nq, Nk, head_dim, bias shape (None: no bias), scale (None: default), dtype,
    # strided (q, k, v sliced from a (B, N, H, d+2) projection and viewed as (B, H, N, d))
    (1, 1, 3, 33, 8, None, None, torch.float32, False),
    (2, 3, 33, 3, 24, (1, 3, 1, 3), 0.37, torch.float32, True),  # per-head per-key bias
    (1, 2, 65, 129, 48, (1, 1, 65, 1), None, torch.float32, False),  # per-query bias
    (2, 1, 129, 65, 96, (129, 65), 1.3, torch.float16, True),  # shared over batch and heads
    (3, 2, 9, 11, 120, (3, 1, 9, 11), None, torch.float32, False),  # per-sample bias
    (1, 2, 17, 200, 112, (17, 1), 0.2, torch.float16, False),  # per-query, shared over keys
]


@needs_triton
@pytest.mark.parametrize(
    "case",
    ATTENTION_CASES,
    ids=lambda c: f"q{c[2]}-k{c[3]}-d{c[4]}-{str(c[7])[6:]}{'-strided' if c[8] else ''}",
)
def test_triton_attention_unlisted_shapes_match_float64(case):
    batch, heads, nq, nk, d, bias_shape, scale, dtype, strided = case
    g = torch.Generator().manual_seed(0)

    def tensor(n):
        if strided:  # cast before slicing: .to() of a non-dense view would make it contiguous
            full = torch.randn(batch, n, heads, d + 2, generator=g).to(DEVICE, dtype)
            return full[..., 1 : d + 1].transpose(1, 2).requires_grad_()
        return torch.randn(batch, heads, n, d, generator=g).to(DEVICE, dtype).requires_grad_()

    q, k, v = (tensor(n) for n in (nq, nk, nk))
    assert q.is_contiguous() != strided
    bias = None
    if bias_shape is not None:
        bias = torch.randn(bias_shape, generator=g).to(DEVICE, dtype).requires_grad_()
    out = attention(q, k, v, bias=bias, scale=scale, backend="triton")
    assert out.shape == (batch, heads, nq, d) and out.dtype == dtype
    grad_out = torch.randn(out.shape, generator=g).to(DEVICE, dtype)
    out.backward(grad_out)

    leaves = [None if t is None else t.detach().double().requires_grad_() for t in (q, k, v, bias)]
    expected = attention(*leaves[:3], bias=leaves[3], scale=scale, backend="math")
    expected.backward(grad_out.double())
    _assert_close(out, expected, dtype, "out")
    for name, leaf, ref in zip("qkv", (q, k, v), leaves):
        assert leaf.grad.shape == leaf.shape
        _assert_close(leaf.grad, ref.grad, dtype, f"d{name}")
    if bias is not None and dtype == torch.float32:  # fp16 dbias sums many rounded terms
        _assert_close(bias.grad, leaves[3].grad, dtype, "dbias")


GROUP_NORM_CASES = [
    # shape, groups, dtype, affine
    ((2, 6, 13), 3, torch.float32, True),  # 1-D positions
    ((1, 9, 5, 7), 3, torch.float32, False),  # odd channels, 3 per group
    ((2, 15, 3, 5, 7), 5, torch.float16, True),  # 3-D positions
    ((1, 4, 70, 60), 1, torch.float32, True),  # 4200 positions: two tiles, the second partial
    ((3, 4), 2, torch.float32, True),  # no positions at all
]


@needs_triton
@pytest.mark.parametrize(
    "case", GROUP_NORM_CASES, ids=lambda c: f"{'x'.join(map(str, c[0]))}-g{c[1]}"
)
def test_triton_group_norm_silu_unlisted_shapes_match_float64(case):
    from diffrepro.core.kernels.fused_group_norm import group_norm_silu_triton

    shape, groups, dtype, affine = case
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g) * 3 + 1).to(DEVICE, dtype).requires_grad_()
    params = [torch.randn(shape[1], generator=g).to(DEVICE).requires_grad_() for _ in range(2)]
    weight, bias = params if affine else (None, None)
    y = group_norm_silu_triton(x, groups, weight, bias, 1e-6)
    grad_y = torch.randn(shape, generator=g).to(DEVICE, dtype)
    y.backward(grad_y)

    leaves = [t.detach().double().requires_grad_() for t in (x, *params)]
    w64, b64 = leaves[1:] if affine else (None, None)
    expected = F.silu(F.group_norm(leaves[0], groups, w64, b64, 1e-6))
    expected.backward(grad_y.double())
    _assert_close(y, expected, dtype, "y")
    _assert_close(x.grad, leaves[0].grad, dtype, "dx")
    if affine:
        for name, param, ref in zip(("weight", "bias"), params, leaves[1:]):
            _assert_close(param.grad, ref.grad, dtype, f"d{name}")


@needs_triton
def test_triton_group_norm_silu_non_contiguous_input():
    from diffrepro.core.kernels.fused_group_norm import group_norm_silu_triton

    x = torch.randn(2, 6, 7, 5, device=DEVICE).transpose(-1, -2)
    weight, bias = torch.randn(6, device=DEVICE), torch.randn(6, device=DEVICE)
    expected = F.silu(F.group_norm(x.double(), 2, weight.double(), bias.double(), 1e-5))
    _assert_close(group_norm_silu_triton(x, 2, weight, bias, 1e-5), expected, torch.float32, "y")


def _official_state_shapes():
    """``official_state_shapes`` of test_unet.py (an independent guided-diffusion key generator)."""
    spec = importlib.util.spec_from_file_location(
        "_adm_keys", Path(__file__).with_name("test_unet.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.official_state_shapes


ADM_CONFIGS = {
    "three_levels_no_scale_shift": dict(
        channel_mult=(1, 2, 4), attention_resolutions=(16, 4), use_scale_shift_norm=False
    ),
    "head_channels_updown_learn_sigma": dict(
        channel_mult=(1, 1, 2, 2),
        attention_resolutions=(8,),
        num_head_channels=4,
        resblock_updown=True,
        learn_sigma=True,
    ),
    "half_mult_class_cond_upsample_heads": dict(
        channel_mult=(0.5, 1, 2),
        attention_resolutions=(8,),
        num_heads=4,
        num_heads_upsample=1,
        num_classes=3,
        num_res_blocks=3,
        model_channels=16,
    ),
    "no_conv_resample_new_order": dict(
        channel_mult=(1, 2),
        attention_resolutions=(16, 8),
        conv_resample=False,
        use_new_attention_order=True,
        num_res_blocks=2,
        in_channels=1,
        out_channels=2,
        cond_channels=2,
    ),
}


@pytest.mark.parametrize("name", list(ADM_CONFIGS))
def test_adm_unet_keys_heads_and_forward_on_more_configs(name):
    base = dict(image_size=16, model_channels=8, num_groups=4, num_res_blocks=1, num_heads=2)
    cfg = UNetConfig(**{**base, **ADM_CONFIGS[name]})
    torch.manual_seed(0)
    model = UNetModel(cfg).eval()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == _official_state_shapes()(
        cfg
    )
    # guided-diffusion: num_head_channels, when set, fixes the head width everywhere; otherwise
    # num_heads in the encoder and middle, num_heads_upsample (default num_heads) in the decoder
    for path, block in model.named_modules():
        if isinstance(block, AttentionBlock):
            channels = block.qkv.out_channels // 3
            heads = cfg.num_heads
            if path.startswith("output_blocks") and cfg.num_heads_upsample != -1:
                heads = cfg.num_heads_upsample
            if cfg.num_head_channels != -1:
                heads = channels // cfg.num_head_channels
            assert block.num_heads == heads, path
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        y = torch.tensor([0, 2]) if cfg.num_classes else None
        cond = torch.randn(2, cfg.cond_channels, 8, 24) if cfg.cond_channels else None
        x = torch.randn(2, cfg.in_channels, 8, 24)
        out = model(x, torch.tensor([1, 500]), y, cond=cond)
        assert out.shape == (2, cfg.output_channels, 8, 24) and torch.isfinite(out).all()
        if y is not None:
            assert not torch.allclose(model(x, torch.tensor([1, 500]), y.flip(0), cond=cond), out)


@pytest.mark.parametrize(
    "key, value",
    [
        ("reverse_transformer_layers_per_block", [[1], [1]]),
        ("class_embed_type", "timestep"),
        ("resnet_time_scale_shift", "scale_shift"),
        ("num_attention_heads", 4),
    ],
)
def test_sd_unet_config_refuses_unsupported_settings_clearly(key, value):
    with pytest.raises(ValueError, match=f"unsupported {key}"):
        config_from_dict(UNet2DConditionConfig, {key: value}, source="unet/config.json")


def test_sd_unet_config_accepts_mid_block_only_cross_attention():
    # diffusers ignores it for UNetMidBlock2DCrossAttn, so any value builds the same model
    for value in (None, False, True):
        config = config_from_dict(
            UNet2DConditionConfig, {"mid_block_only_cross_attention": value}, source="config"
        )
        assert config == UNet2DConditionConfig()
