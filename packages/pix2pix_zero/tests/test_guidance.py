"""Cross-attention guidance: zero direction, CFG identity, hooks, the guidance step and a hand-made
reference of one guided DDIM step (spec §3.5, §6.3–6.6)."""

import dataclasses

import pytest
import torch

from diffrepro.core.nn.transformer import AttentionStore
from diffrepro.core.samplers import ddim_mean_variance
from diffrepro.pix2pix_zero.guidance import (
    CrossAttentionLoss,
    GuidanceConfig,
    cross_attention_loss,
    edit_pass,
    guided_output,
    reference_pass,
)

CAPTION = ["a photo of a cat"]


def states(sd, caption=CAPTION):
    cond = sd.encode_prompt(caption)
    return cond, sd.encode_prompt([""] * len(caption))


@pytest.mark.parametrize(
    "carry, xa, negative",
    [("negative", 0.1, "caption"), ("negative", 5.0, "empty"), ("paper", 5.0, "caption")],
)
def test_zero_direction_edit_equals_reconstruction(sd64, x_t, carry, xa, negative):
    cond, empty = states(sd64)
    uncond = cond if negative == "caption" else empty
    cfg = GuidanceConfig(num_steps=3, xa_guidance=xa, carry=carry)
    recon, maps = reference_pass(sd64, x_t, cond, uncond, cfg)
    edited, losses = edit_pass(sd64, x_t, cond.clone(), uncond, maps, cfg)
    assert len(losses) == 3
    if carry == "negative":  # the same batch as the reference pass: bit-identical maps
        assert losses == [0.0] * 3
    else:  # a batch of one instead of two: maps agree to float64 rounding
        assert max(losses) < 1e-24
    assert (edited - recon).abs().max() < 1e-12


def test_real_image_cfg_identity(sd64, x_t):
    """negative = caption: CFG equals the conditional prediction whatever the scale."""
    cond, _ = states(sd64)
    t = torch.tensor([501, 501])
    plain = sd64.unet(x_t, t[:1], cond)
    for scale in (1.0, 5.0, 7.5):
        xx = x_t if scale == 1.0 else torch.cat([x_t, x_t])
        ctx = cond if scale == 1.0 else torch.cat([cond, cond])
        out = guided_output(sd64.unet, xx, t[: xx.shape[0]], ctx, scale)
        assert (out - plain).abs().max() < 1e-12
    a, _ = reference_pass(sd64, x_t, cond, cond, GuidanceConfig(num_steps=3, guidance_scale=5.0))
    b, _ = reference_pass(sd64, x_t, cond, cond, GuidanceConfig(num_steps=3, guidance_scale=1.0))
    assert (a - b).abs().max() < 1e-12


def test_cfg_with_empty_negative_extrapolates(sd64, x_t):
    cond, empty = states(sd64)
    t = torch.tensor([501, 501])
    out_u, out_c = sd64.unet(x_t, t[:1], empty), sd64.unet(x_t, t[:1], cond)
    out = guided_output(sd64.unet, torch.cat([x_t, x_t]), t, torch.cat([empty, cond]), 3.0)
    assert (out - (out_u + 3.0 * (out_c - out_u))).abs().max() < 1e-12


def test_reference_maps_rows_sum_to_one_one_entry_per_step(sd64, x_t):
    cond, empty = states(sd64)
    _, maps = reference_pass(sd64, x_t, cond, empty, GuidanceConfig(num_steps=3))
    attn2 = [n for n, _ in sd64.unet.named_modules() if n.endswith("attn2")]
    assert sorted(maps) == sorted(attn2) and len(attn2) == 7  # every attn2, no attn1
    queries = set()
    for steps in maps.values():
        assert len(steps) == 3
        for m in steps:
            assert m.shape[0] == 2 and m.shape[1] == 2 and m.shape[-1] == 77  # [neg, cond], heads
            assert (m.sum(-1) - 1).abs().max() < 1e-12
            queries.add(m.shape[2])
    assert queries == {64, 16}


def test_hooks_do_not_change_the_unet_output(sd64, x_t):
    cond, _ = states(sd64)
    t = torch.tensor([301])
    plain = sd64.unet(x_t, t, cond)
    store = AttentionStore()
    hooked = guided_output(sd64.unet, x_t, t, cond, 1.0, store)
    assert (hooked - plain).abs().max() < 1e-12 and len(store.maps) == 7


def test_cross_attention_loss_is_the_official_normalisation():
    """Σ_layers mean_{batch,heads} Σ_{queries,tokens} (M − M_ref)²."""
    g = torch.Generator().manual_seed(0)
    m1, r1 = torch.rand(2, 3, 5, 7, generator=g), torch.rand(2, 3, 5, 7, generator=g)
    m2, r2 = torch.rand(2, 3, 4, 7, generator=g), torch.rand(2, 3, 4, 7, generator=g)
    hook = CrossAttentionLoss({"a": r1, "b": r2})
    hook("a", True, m1)
    hook("self", False, torch.rand(2, 3, 5, 5))  # self-attention is ignored
    hook("b", True, m2)
    expected = sum(
        float(((m - r) ** 2).reshape(6, -1).sum(1).mean()) for m, r in ((m1, r1), (m2, r2))
    )
    assert hook.loss.item() == pytest.approx(expected, rel=1e-6)


def _one_step_setup(sd, x_t):
    cond, uncond = states(sd)
    direction = sd.encode_prompt(["a photo of a dog"]) - cond
    cfg = GuidanceConfig(num_steps=1, guidance_scale=4.0, xa_guidance=0.7)
    _, maps = reference_pass(sd, x_t, cond, uncond, cfg)
    return cond, uncond, cond + direction, maps, cfg


def test_guidance_step_lowers_the_xa_loss(sd64, x_t):
    cond, uncond, cond_edit, maps, _ = _one_step_setup(sd64, x_t)
    ref = {n: s[0] for n, s in maps.items()}
    X = torch.cat([x_t, x_t]).requires_grad_(True)
    t = torch.tensor([1, 1])
    ctx = torch.cat([uncond, cond_edit])
    loss = cross_attention_loss(sd64.unet, X, t, ctx, ref)
    (grad,) = torch.autograd.grad(loss, X)
    assert loss.item() > 0 and grad.abs().max() > 0
    with torch.no_grad():
        moved = cross_attention_loss(sd64.unet, X - 1e-3 * grad, t, ctx, ref)
    assert moved.item() < loss.item()


def _ddim_one(sd, x, out):
    a_t = float(sd.schedule.alphas_cumprod[1])
    a_prev = sd.scheduler.final_alpha_cumprod(sd.schedule)
    x0 = (x - (1 - a_t) ** 0.5 * out) / a_t**0.5
    return ddim_mean_variance(x0, out, a_t, a_prev)[0]


@pytest.mark.parametrize("carry", ["negative", "paper"])
def test_one_guided_step_matches_a_hand_made_reference(sd64, x_t, carry):
    cond, uncond, cond_edit, maps, cfg = _one_step_setup(sd64, x_t)
    cfg = dataclasses.replace(cfg, carry=carry)
    edited, losses = edit_pass(sd64, x_t, cond_edit, uncond, maps, cfg)
    t2, w, lr = torch.tensor([1, 1]), cfg.guidance_scale, cfg.xa_guidance
    ctx = torch.cat([uncond, cond_edit])
    if carry == "negative":  # both halves move against their own references; keep the first
        X = torch.cat([x_t, x_t]).requires_grad_(True)
        loss = cross_attention_loss(sd64.unet, X, t2, ctx, {n: s[0] for n, s in maps.items()})
        X = (X - lr * torch.autograd.grad(loss, X)[0]).detach()
        carried = X[:1]
    else:  # the edited branch's maps against the conditional references move x
        x = x_t.clone().requires_grad_(True)
        ref = {n: s[0][1:] for n, s in maps.items()}
        loss = cross_attention_loss(sd64.unet, x, t2[:1], cond_edit, ref)
        carried = (x - lr * torch.autograd.grad(loss, x)[0]).detach()
        X = torch.cat([carried, carried])
    with torch.no_grad():
        out_u, out_c = sd64.unet(X, t2, ctx).chunk(2)
        expected = _ddim_one(sd64, carried, out_u + w * (out_c - out_u))
    assert losses == [pytest.approx(loss.item(), rel=1e-12)]
    assert (edited - expected).abs().max() < 1e-10
    unguided, _ = edit_pass(
        sd64, x_t, cond_edit, uncond, maps, dataclasses.replace(cfg, xa_guidance=0.0)
    )
    assert (edited - unguided).abs().max() > 1e-6  # the step moved the latent


def test_carry_modes_differ(sd64, x_t):
    cond, uncond, cond_edit, maps, cfg = _one_step_setup(sd64, x_t)
    a, _ = edit_pass(sd64, x_t, cond_edit, uncond, maps, cfg)
    b, _ = edit_pass(sd64, x_t, cond_edit, uncond, maps, dataclasses.replace(cfg, carry="paper"))
    assert (a - b).abs().max() > 1e-8


@pytest.mark.parametrize("kwargs", [{"carry": "positive"}, {"num_steps": 0}, {"xa_guidance": -0.1}])
def test_bad_guidance_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        GuidanceConfig(**kwargs)
