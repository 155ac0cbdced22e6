"""The wiring the method depends on: the adapted model samples, bicubic SR, the guided step's
level / re-evaluation index, and the LoRA scale α / r."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

import diffrepro.adir.restore as restore_module
from diffrepro.adir.adapt import add_lora
from diffrepro.adir.config import PRESETS, AdaptConfig
from diffrepro.adir.guidance import GuidanceConfig, adir_callback
from diffrepro.adir.model import build_model
from diffrepro.adir.tasks import make_operator
from diffrepro.core.nn.lora import LoRAConv
from diffrepro.core.samplers import StepState

CFG = dataclasses.replace(PRESETS["tiny"], sample_steps="5")


def perturbed(model, seed):
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return out


def test_restore_samples_with_the_adapted_model(monkeypatch):
    torch.manual_seed(0)
    base = perturbed(build_model(CFG).eval(), 1)  # non-zero output conv
    adapted = perturbed(base, 2)
    monkeypatch.setattr(restore_module, "retrieve", lambda *a, **k: ["n0.png", "n1.png"])
    monkeypatch.setattr(restore_module, "load_image", lambda path, size: torch.zeros(3, size, size))
    monkeypatch.setattr(restore_module, "adapted_copy", lambda model, *a, **k: adapted)
    op = make_operator("sr2_pool", 16)
    y = op.forward(torch.rand(1, 3, 16, 16) * 2 - 1)
    cfg = dataclasses.replace(CFG, guidance=GuidanceConfig(scale=0.5))
    result = restore_module.restore(
        base, op, y, 16, cfg, index=object(), embedder=object(),
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    shape = (1, 3, 16, 16)
    sample = lambda m: restore_module.guided_sample(  # noqa: E731
        m, op, y, shape, cfg, generator=torch.Generator().manual_seed(3)
    ).clamp(-1, 1)
    assert result.neighbours == ("n0.png", "n1.png")
    assert torch.equal(result.restored, sample(adapted))
    assert not torch.allclose(result.restored, sample(base))


@pytest.mark.parametrize(("factor", "size"), [(2, 16), (4, 32)])
def test_bicubic_sr_matches_torch_antialiased_bicubic_away_from_the_border(factor, size):
    x = torch.rand(
        2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    ours = make_operator(f"sr{factor}", size).forward(x)
    ref = F.interpolate(
        x, scale_factor=1 / factor, mode="bicubic", antialias=True, align_corners=False
    )
    inner = slice(2, size // factor - 2)  # the operator wraps circularly, torch clamps
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours[..., inner, inner], ref[..., inner, inner], atol=1e-6, rtol=0)


def state(t_index=5):
    gen = torch.Generator().manual_seed(4)
    rand = lambda: torch.randn(1, 3, 8, 8, dtype=torch.float64, generator=gen)  # noqa: E731
    return StepState(
        i=0, t_index=t_index, timestep=500, alpha_bar=0.3, alpha_bar_prev=0.8, x=rand(),
        model_output=rand(), eps=rand(), x0=rand(), mean=rand(),
        variance=torch.full((1, 3, 8, 8), 0.1, dtype=torch.float64), noise=None,
    )  # fmt: skip


def expected_mean(op, y, s, eps, alpha_bar, scale):
    y_t = alpha_bar**0.5 * y + (1 - alpha_bar) ** 0.5 * op.forward(eps)
    return s.mean - scale * s.variance * 2 * op.adjoint(op.forward(s.mean) - y_t)


@pytest.mark.parametrize(("level", "alpha_bar"), [("next", 0.8), ("current", 0.3)])
def test_guided_step_uses_the_chosen_level(level, alpha_bar):
    op = make_operator("sr2_pool", 8)
    y = op.forward(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    s = state()
    out = adir_callback(op, y, GuidanceConfig(scale=0.7, level=level))(s)
    torch.testing.assert_close(out.mean, expected_mean(op, y, s, s.eps, alpha_bar, 0.7))
    other = 0.3 if alpha_bar == 0.8 else 0.8
    assert not torch.allclose(out.mean, expected_mean(op, y, s, s.eps, other, 0.7))


def test_reevaluated_eps_is_taken_at_the_next_index_of_the_guided_mean():
    op = make_operator("inpaint_box", 8)
    y = op.forward(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    calls = []
    fresh = torch.full((1, 3, 8, 8), 0.25, dtype=torch.float64)

    def eps_model(x, index):
        calls.append((x, index))
        return fresh

    cfg = GuidanceConfig(scale=0.7, eps_source="reevaluate")
    s = state(t_index=5)
    out = adir_callback(op, y, cfg, eps_model=eps_model)(s)
    assert len(calls) == 1 and calls[0][1] == 4 and torch.equal(calls[0][0], s.mean)
    torch.testing.assert_close(out.mean, expected_mean(op, y, s, fresh, 0.8, 0.7))
    last = state(t_index=0)  # the final step: no level below, the step's own ε
    out = adir_callback(op, y, cfg, eps_model=eps_model)(last)
    assert len(calls) == 1
    torch.testing.assert_close(out.mean, expected_mean(op, y, last, last.eps, 0.8, 0.7))


@pytest.mark.parametrize(("rank", "alpha"), [(2, 6.0), (4, 1.0)])
def test_lora_update_is_scaled_by_alpha_over_rank(rank, alpha):
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    add_lora(model, AdaptConfig(rank=rank, alpha=alpha))
    layer = next(
        m for m in model.modules() if isinstance(m, LoRAConv) and m.base.kernel_size[0] == 3
    )
    assert layer.scale == pytest.approx(alpha / rank)
    torch.nn.init.normal_(layer.up.weight)
    x = torch.randn(1, layer.base.in_channels, 8, 8)
    up = layer.up.weight.reshape(-1, rank)
    down = layer.down.weight.reshape(rank, -1)
    delta = (alpha / rank * up @ down).reshape(layer.base.weight.shape)
    padding = layer.base.padding
    expected = layer.base(x) + F.conv2d(x, delta, stride=layer.base.stride, padding=padding)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("rank", "alpha"), [(2, 6.0), (4, 1.0)])
def test_attention_conv1d_lora_is_scaled_by_alpha_over_rank_and_merges_exactly(rank, alpha):
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    add_lora(model, AdaptConfig(rank=rank, alpha=alpha))
    layer = next(m for n, m in model.named_modules() if n.endswith(".qkv"))
    assert isinstance(layer, LoRAConv) and isinstance(layer.base, torch.nn.Conv1d)
    assert layer.scale == pytest.approx(alpha / rank)
    torch.nn.init.normal_(layer.up.weight)
    x = torch.randn(2, layer.base.in_channels, 10)
    up, down = layer.up.weight.reshape(-1, rank), layer.down.weight.reshape(rank, -1)
    delta = (alpha / rank * up @ down).reshape(layer.base.weight.shape)
    with torch.no_grad():
        unmerged = layer(x)
        torch.testing.assert_close(unmerged, layer.base(x) + F.conv1d(x, delta), atol=1e-5, rtol=0)
        layer.merge()
        torch.testing.assert_close(layer(x), unmerged, atol=1e-5, rtol=1e-5)
