"""Tests that pin VIDM's equations and wiring to independent references (float64 rewrites of
PosGN and the P2-weighted loss, recorded calls of the sampler), so a broken index fails."""

import dataclasses

import numpy as np
import pytest
import torch

from diffrepro.vidm.config import preset
from diffrepro.vidm.diffusion import make_schedule, training_loss
from diffrepro.vidm.generate import generate_videos
from diffrepro.vidm.motion_unet import MotionUNet
from diffrepro.vidm.pairs import motion_batch
from diffrepro.vidm.posgn import PosGN
from diffrepro.vidm.synthetic import SyntheticConfig, SyntheticSprites
from diffrepro.vidm.training import (
    TRAINING_FLOW,
    load_generator,
    stage_loss,
    train_stage,
    training_flow_source,
    with_training_flow,
)

TINY = preset("tiny")
PHOTOS = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1]


# --- PosGN: the coordinate order is (t~, n~, h~, w~) --------------------------------------------


def test_motion_coordinates_are_t_then_n_normalised_by_their_own_counts():
    model = MotionUNet(dataclasses.replace(TINY.motion, num_frames=6))
    coords = model.coords(torch.tensor([0, 999, 333]), torch.tensor([5, 0, 2]))
    expected = [[-1.0, 1.0], [1.0, -1.0], [-1 + 2 * 333 / 999, -1 + 2 * 2 / 5]]
    np.testing.assert_allclose(coords.numpy(), expected, atol=1e-6)


def test_posgn_matches_a_float64_rewrite_of_the_paper_formula():
    torch.manual_seed(0)
    layer = PosGN(8, groups=4).double()
    x = torch.randn(2, 8, 3, 5, dtype=torch.float64)
    coords = torch.tensor([[-0.4, 0.6], [0.9, -1.0]], dtype=torch.float64)
    with torch.no_grad():
        ours = layer(x, coords).numpy()
        normed = layer.norm(x).numpy()
    p = {k: v.detach().numpy() for k, v in layer.state_dict().items()}
    hs, ws = np.linspace(-1, 1, 3), np.linspace(-1, 1, 5)
    expected = np.zeros_like(ours)
    for b in range(2):
        for i, h in enumerate(hs):
            for j, w in enumerate(ws):
                z = np.array([coords[b, 0].item(), coords[b, 1].item(), h, w])  # [t, n, h, w]
                e = np.sin(p["coord_in.weight"] @ z + p["coord_in.bias"])
                e = p["coord_hidden.weight"] @ e + p["coord_hidden.bias"]
                e = e / (1 + np.exp(-e))
                e = p["coord_out.weight"] @ e + p["coord_out.bias"]
                gamma, beta = e[:8], e[8:]
                expected[b, :, i, j] = normed[b, :, i, j] * (1 + gamma) + beta
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


# --- the loss: P2-weighted eps MSE ---------------------------------------------------------------


@pytest.mark.parametrize("gamma", [1.0, 0.0])
def test_mse_term_is_p2_weighted_as_in_the_float64_formula(gamma):
    cfg = dataclasses.replace(TINY.diffusion, num_timesteps=1000, p2_gamma=gamma, p2_k=1.0)
    schedule = make_schedule(cfg)
    x0 = torch.rand(64, 3, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def model(x, t):  # predicts eps = 0.5 everywhere, variance channel 0
        return torch.cat([torch.full_like(x, 0.5), torch.zeros_like(x)], dim=1)

    terms = training_loss(model, x0, schedule, cfg, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)  # the same draws: steps, then noise
    t = torch.randint(0, 1000, (64,), generator=g).numpy()
    noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype).double().numpy()
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    abar = np.cumprod(1 - betas)
    weight = 1.0 / (1.0 + abar / (1 - abar)) ** gamma
    expected = (weight[t] * ((noise - 0.5) ** 2).mean(axis=(1, 2, 3))).mean()
    assert terms["mse"].item() == pytest.approx(expected, rel=1e-5)
    if gamma == 1.0:  # P2 is really on: the unweighted mean is far from it
        assert abs(((noise - 0.5) ** 2).mean() - expected) > 0.1


# --- the motion cue: flow from the first frame to the PREVIOUS frame -----------------------------


def test_generation_estimates_the_flow_from_the_first_to_the_previous_generated_frame():
    seen = []

    class Stub(torch.nn.Module):  # each frame's eps pulls the sample towards a different value
        def forward(self, x, t, n, first, flow):
            return torch.cat([x - 0.1 * n.float()[:, None, None, None], torch.zeros_like(x)], 1)

    def flow_source(first, later):
        seen.append((first.clone(), later.clone()))
        return torch.zeros(first.shape[0], 2, *first.shape[-2:])

    cfg = dataclasses.replace(TINY.diffusion, respacing="3")
    first = torch.rand(2, 3, 8, 8) * 2 - 1
    videos = generate_videos(Stub(), first, 4, [0, 1], cfg, flow_source)
    assert len(seen) == 3
    for n, (a, b) in enumerate(seen, start=1):
        assert torch.equal(a, first)
        assert torch.equal(b, videos[:, n - 1])  # frame n is conditioned on frame n - 1
    assert not torch.equal(videos[:, 2], first)


def test_training_pairs_estimate_the_flow_from_the_first_to_the_previous_frame():
    frames = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1, 1, 1).expand(4, 6, 3, 2, 2)
    seen = []

    def flow_source(first, later):
        seen.append((first.clone(), later.clone()))
        return torch.zeros(first.shape[0], 2, 2, 2)

    example = motion_batch(frames, None, torch.Generator().manual_seed(0), flow_source=flow_source)
    first, previous = seen[0]
    assert torch.equal(first, frames[:, 0])
    assert previous[:, 0, 0, 0].tolist() == (example.index - 1).float().tolist()
    assert example.target[:, 0, 0, 0].tolist() == example.index.float().tolist()


# --- the loader rebuilds the network with the SAVED frame count ----------------------------------


def test_loaded_motion_generator_keeps_the_trained_frame_count_and_outputs(tmp_path):
    cfg = dataclasses.replace(
        TINY, train=dataclasses.replace(TINY.train, steps=2, checkpoint_every=2, ema_decay=None)
    )
    data = SyntheticSprites(
        SyntheticConfig(size=8, frames=4, num_clips=4, sprite_size=(2, 3)), PHOTOS
    )
    torch.manual_seed(0)
    model, _ = train_stage(cfg, "motion", tmp_path, dataset=data)
    loaded, loaded_cfg = load_generator(tmp_path, "motion")
    assert loaded.config.num_frames == loaded_cfg.motion.num_frames == cfg.motion.num_frames == 4
    g = torch.Generator().manual_seed(2)
    x, first = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    flow = torch.randn(2, 2, 8, 8, generator=g)
    with torch.no_grad():
        for p in model.parameters():  # two steps leave most weights at zero: make n matter
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        loaded.load_state_dict(model.state_dict())
        t, n = torch.tensor([500, 500]), torch.tensor([3, 3])
        assert torch.equal(loaded(x, t, n, first, flow), model(x, t, n, first, flow))


# --- the loss: plus the unscaled L_vb term, which trains only the variance channels ----------


def test_loss_is_p2_mse_plus_the_vb_term_and_vb_sees_the_mean_detached():
    cfg = dataclasses.replace(TINY.diffusion, num_timesteps=1000)
    schedule = make_schedule(cfg)
    x0 = torch.rand(16, 3, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    eps_param = torch.full((1,), 0.3, requires_grad=True)
    var_param = torch.full((1,), 0.2, requires_grad=True)

    def model(x, t):
        return torch.cat([eps_param * torch.ones_like(x), var_param * torch.ones_like(x)], dim=1)

    terms = training_loss(model, x0, schedule, cfg, torch.Generator().manual_seed(3))
    assert terms["vb"].item() > 0
    torch.testing.assert_close(terms["loss"], terms["mse"] + cfg.vb_scale * terms["vb"])
    assert cfg.vb_scale == 1.0
    (grad_eps,) = torch.autograd.grad(terms["vb"], eps_param, retain_graph=True, allow_unused=True)
    assert grad_eps is None or grad_eps.abs().item() == 0  # the mean is detached in L_vb
    (grad_var,) = torch.autograd.grad(terms["vb"], var_param)
    assert grad_var.abs().item() > 0
    doubled = training_loss(
        model,
        x0,
        schedule,
        dataclasses.replace(cfg, vb_scale=2.0),
        torch.Generator().manual_seed(3),
    )
    torch.testing.assert_close(doubled["loss"], terms["mse"] + 2 * terms["vb"])


def test_precomputed_training_flow_is_the_estimate_from_the_first_to_the_previous_frame():
    cfg = dataclasses.replace(TINY, flow=dataclasses.replace(TINY.flow, training="block_matching"))
    data = SyntheticSprites(
        SyntheticConfig(size=8, frames=4, num_clips=3, sprite_size=(2, 3)), PHOTOS
    )
    clips = with_training_flow(cfg, [data[i] for i in range(3)], batch=2)
    source = training_flow_source(cfg)
    for clip in clips:
        frames = clip["frames"]
        expected = source(frames[:1].expand(len(frames), -1, -1, -1), frames)
        assert torch.equal(clip[TRAINING_FLOW], expected)
    batch = torch.utils.data.default_collate(clips)
    seen = []

    def model(x, t, n, first, flow):
        seen.append((n.clone(), flow.clone()))
        return torch.zeros(x.shape[0], 6, *x.shape[-2:])

    noflip = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, hflip=False))
    stage_loss(noflip, "motion")(model, batch, torch.Generator().manual_seed(0))
    n, flow = seen[0]
    rows = torch.arange(len(n))
    assert torch.equal(flow, batch[TRAINING_FLOW][rows, n - 1])  # the previous frame's flow
    assert stage_loss(TINY, "motion") is not None and with_training_flow(TINY, clips) is clips
