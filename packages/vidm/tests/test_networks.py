"""Motion and content networks: zero output at init, fusion, frame-index sensitivity, any batch."""

import dataclasses

import pytest
import torch

from diffrepro.vidm.config import preset
from diffrepro.vidm.content import ContentUNet
from diffrepro.vidm.motion_unet import MotionUNet

TINY = preset("tiny")


def tiny_motion(**overrides) -> MotionUNet:
    torch.manual_seed(0)
    return MotionUNet(dataclasses.replace(TINY.motion, num_frames=6, **overrides))


def tiny_content() -> ContentUNet:
    torch.manual_seed(0)
    return ContentUNet(TINY.content)


def inputs(batch, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 3, size, size, generator=g),
        torch.randn(batch, 3, size, size, generator=g),
        torch.randn(batch, 2, size, size, generator=g) * 3,
    )


def perturb(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def test_motion_network_outputs_exactly_zero_at_initialisation():
    model = tiny_motion()
    x, first, flow = inputs(4)
    out = model(x, torch.tensor([0, 10, 500, 999]), torch.tensor([1, 2, 3, 5]), first, flow)
    assert out.shape == (4, 6, 8, 8)
    assert torch.count_nonzero(out) == 0
    # zero-initialised output paths: every ResBlock output conv and the final conv
    zero_convs = [m.out_layers[3] for m in model.modules() if hasattr(m, "out_layers")] + [
        model.unet.out[2]
    ]
    assert len(zero_convs) > 10 and all(torch.count_nonzero(c.weight) == 0 for c in zero_convs)
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    assert not hasattr(model.unet, "time_embed")


def test_frame_index_changes_the_output_only_with_the_frame_coordinate():
    for use_frame in (True, False):
        model = tiny_motion(use_frame_coordinate=use_frame)
        perturb(model)
        x, first, flow = inputs(1)
        t = torch.tensor([300])
        a = model(x, t, torch.tensor([1]), first, flow)
        b = model(x, t, torch.tensor([4]), first, flow)
        assert a.shape == b.shape
        assert (not torch.allclose(a, b, atol=1e-5)) == use_frame


def test_batch_size_may_change_between_calls_and_samples_are_independent():
    model = tiny_motion()
    perturb(model)
    x, first, flow = inputs(5)
    t, n = torch.tensor([3, 3, 700, 999, 0]), torch.tensor([1, 5, 2, 2, 3])
    full = model(x, t, n, first, flow)
    for i in range(5):
        one = model(x[i : i + 1], t[i : i + 1], n[i : i + 1], first[i : i + 1], flow[i : i + 1])
        assert torch.allclose(one, full[i : i + 1], atol=1e-5)
    assert model(*inputs(2, size=16)[:1], t[:2], n[:2], *inputs(2, size=16)[1:]).shape == (
        2,
        6,
        16,
        16,
    )


def test_first_frame_features_enter_every_down_level_with_the_fusion_factor():
    model = tiny_motion()
    perturb(model)
    x, first, flow = inputs(2)
    coords = model.coords(torch.tensor([5, 5]), torch.tensor([1, 2]))
    h = torch.cat([x, flow * 2 / 8], dim=1)
    _, skips = model.fused_encode(h, first, coords)
    r, u = first, h
    for k, (enc, blk) in enumerate(zip(model.encoder.input_blocks, model.unet.input_blocks)):
        r = enc(r, coords)
        u_next = blk(u, coords)
        assert r.shape == u_next.shape
        u = r + 0.2 * u_next
        assert torch.allclose(skips[k], u, atol=1e-6)


def test_first_frame_and_flow_condition_the_output():
    model = tiny_motion()
    perturb(model)
    x, first, flow = inputs(1)
    t, n = torch.tensor([100]), torch.tensor([2])
    base = model(x, t, n, first, flow)
    assert not torch.allclose(base, model(x, t, n, -first, flow), atol=1e-5)
    assert not torch.allclose(base, model(x, t, n, first, flow.flip(-1)), atol=1e-5)


def test_bad_shapes_raise_one_clear_error():
    model = tiny_motion()
    x, first, flow = inputs(2)
    with pytest.raises(ValueError, match="flow"):
        model(x, torch.tensor([1, 1]), torch.tensor([1, 1]), first, flow[:, :1])


def test_content_network_constant_input_is_learned_and_broadcast():
    model = tiny_content()
    x = torch.randn(3, 3, 8, 8)
    out = model(x, torch.tensor([1, 2, 3]))
    assert out.shape == (3, 6, 8, 8) and torch.count_nonzero(out) == 0
    assert "constant" in model.state_dict() and model.constant.shape == (3, 8, 8)
    perturb(model)
    model(x, torch.tensor([1, 2, 3])).square().mean().backward()
    assert model.constant.grad is not None and model.constant.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="built for"):
        model(torch.randn(1, 3, 16, 16), torch.tensor([1]))
