"""The demo's pieces: mean +- sd summaries, non-finite numbers are errors, separation verdicts,
the shuffled-first-frame generation control, and the PosGN-off ablation network."""

import dataclasses

import pytest
import torch

from diffrepro.vidm.config import preset
from diffrepro.vidm.demo import _separation, check_finite, summarise
from diffrepro.vidm.generate import generate_videos
from diffrepro.vidm.motion_unet import MotionUNet
from diffrepro.vidm.posgn import PosGN

TINY = preset("tiny")


def test_summaries_are_mean_and_sample_sd_over_seeds():
    runs = [{"a": {"b": 1.0}, "c": 2.0}, {"a": {"b": 3.0}, "c": 2.0}, {"a": {"b": 5.0}, "c": 2.0}]
    summary = summarise(runs)
    assert summary["a"]["b"] == {"mean": 3.0, "sd": 2.0}
    assert summary["c"] == {"mean": 2.0, "sd": 0.0}


def test_non_finite_numbers_are_errors():
    check_finite({"a": [1.0, {"b": 2.0}]})
    with pytest.raises(FloatingPointError, match=r"metrics.a\[1\].b"):
        check_finite({"a": [1.0, {"b": float("nan")}]})
    with pytest.raises(FloatingPointError):
        check_finite({"x": float("inf")})


def test_separation_needs_every_seed_a_clear_margin_and_a_relative_size():
    def get(seed):
        return seed

    assert _separation([(1.0, 2.0), (1.0, 2.1), (1.0, 1.9)], get).startswith("yes")
    assert _separation([(1.0, 2.0), (1.0, 0.9), (1.0, 2.0)], get).startswith("no")  # one seed
    assert _separation([(1.0, 1.01), (1.0, 1.01), (1.0, 1.01)], get).startswith("no")  # tiny


def test_the_shuffled_first_frame_control_changes_only_what_the_network_sees():
    seen = []

    class Stub(torch.nn.Module):
        def forward(self, x, t, n, first, flow):
            seen.append(first.clone())
            return torch.cat([x - first, torch.zeros_like(x)], 1)

    flows = []

    def flow_source(first, later):
        flows.append(first.clone())
        return torch.zeros(first.shape[0], 2, *first.shape[-2:])

    cfg = dataclasses.replace(TINY.diffusion, respacing="2")
    first, other = torch.rand(2, 3, 8, 8), -torch.rand(2, 3, 8, 8)
    videos = generate_videos(Stub(), first, 3, [0, 1], cfg, flow_source, condition=other)
    assert torch.equal(videos[:, 0], first)
    assert seen and all(torch.equal(f, other) for f in seen)
    assert all(torch.equal(f, first) for f in flows)  # the flow still starts at the true frame
    with pytest.raises(ValueError, match="condition"):
        generate_videos(Stub(), first, 3, [0, 1], cfg, flow_source, condition=other[:1])


def test_posgn_off_ablation_uses_adagn_with_a_frame_embedding():
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY.motion, num_frames=6, posgn=False)
    model = MotionUNet(cfg)
    assert not any(isinstance(m, PosGN) for m in model.modules())
    assert hasattr(model.unet, "time_embed") and hasattr(model, "frame_embed")
    g = torch.Generator().manual_seed(0)
    x, first = torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 3, 8, 8, generator=g)
    flow = torch.randn(1, 2, 8, 8, generator=g)
    t = torch.tensor([300])
    assert torch.count_nonzero(model(x, t, torch.tensor([1]), first, flow)) == 0  # zero init
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    a = model(x, t, torch.tensor([1]), first, flow)
    b = model(x, t, torch.tensor([4]), first, flow)
    assert not torch.allclose(a, b, atol=1e-5)
    emb = model.conditioning(torch.tensor([300]), torch.tensor([5]))
    assert emb.shape == (1, 4 * cfg.unet.model_channels)
    # n is rescaled onto t's range: n = N_v - 1 embeds like step T - 1
    from diffrepro.core.nn.embeddings import timestep_embedding

    expected = model.unet.embed(torch.tensor([300])) + model.frame_embed(
        timestep_embedding(torch.tensor([999.0]), cfg.unet.model_channels)
    )
    torch.testing.assert_close(emb, expected)
    off = dataclasses.replace(cfg, use_frame_coordinate=False)
    torch.manual_seed(0)
    model_off = MotionUNet(off)
    torch.testing.assert_close(
        model_off.conditioning(t, torch.tensor([2])), model_off.unet.embed(t)
    )
