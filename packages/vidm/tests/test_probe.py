"""The conditioning probe scores the right inputs: stub networks with known behaviour."""

import dataclasses

import pytest
import torch

from diffrepro.vidm.config import preset
from diffrepro.vidm.diffusion import make_schedule
from diffrepro.vidm.probe import conditioning_probe, shuffled

SCHEDULE = make_schedule(dataclasses.replace(preset("tiny").diffusion, num_timesteps=1000))
T = 600
ABAR = float(SCHEDULE.alphas_cumprod[T])


def clips():
    """Three clips whose frames stay close to their own first frame."""
    g = torch.Generator().manual_seed(0)
    first = torch.rand(3, 1, 3, 6, 6, generator=g) * 1.6 - 0.8
    return first + 0.1 * torch.randn(3, 4, 3, 6, 6, generator=g)


def no_flow(first, later):
    return torch.zeros(first.shape[0], 2, *first.shape[-2:])


class CopyFirst(torch.nn.Module):
    """Predicts the eps for which x0 = the first frame it is given."""

    def forward(self, x, t, n, first, flow):
        eps = (x - ABAR**0.5 * first) / (1 - ABAR) ** 0.5
        return torch.cat([eps, torch.zeros_like(x)], 1)


class Blind(torch.nn.Module):
    """Ignores every condition."""

    def forward(self, x, t, n, first, flow):
        return torch.cat([0.3 * x, torch.zeros_like(x)], 1)


def test_a_network_that_copies_its_first_frame_scores_the_copy_baseline():
    scores = conditioning_probe(CopyFirst(), clips(), SCHEDULE, no_flow, t=T)
    assert scores["real"] == pytest.approx(scores["copy_first"], rel=1e-5)
    assert scores["shuffled_first"] > 1.5 * scores["real"]


def test_a_blind_network_scores_the_same_under_every_control():
    scores = conditioning_probe(Blind(), clips(), SCHEDULE, no_flow, t=T)
    assert scores["real"] == scores["shuffled_first"] == scores["zero_flow"]


def test_flow_is_estimated_from_the_first_to_the_previous_frame_and_baselines():
    frames = clips()
    seen = []

    def flow(first, later):
        seen.append((first, later))
        return no_flow(first, later)

    scores = conditioning_probe(Blind(), frames, SCHEDULE, flow, t=T)
    for n, (first, later) in enumerate(seen, start=1):
        assert torch.equal(first, frames[:, 0]) and torch.equal(later, frames[:, n - 1])
    previous = ((frames[:, 1:] - frames[:, :-1]) ** 2).mean(dim=(0, 2, 3, 4)).mean()
    assert scores["copy_previous"] == pytest.approx(float(previous), rel=1e-5)
    assert not torch.equal(shuffled(frames[:, 0]), frames[:, 0])
    with pytest.raises(ValueError, match="probe step"):
        conditioning_probe(Blind(), frames, SCHEDULE, flow, t=1000)
