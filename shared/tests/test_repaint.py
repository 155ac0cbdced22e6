"""The RePaint-style pixel-DDPM baseline: known pixels pasted exactly, q(x_{t-1}|x) on them,
and one network evaluation per step."""

import numpy as np
import torch

from diffrepro.core.repaint import pasting_callback, repaint_inpaint
from diffrepro.core.schedules import Schedule

SCHEDULE = Schedule.named("linear", 1000)


def _inputs():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 8, 8, generator=gen) * 1.6 - 0.8
    mask0 = (torch.rand(2, 1, 8, 8, generator=gen) > 0.4).float()
    return image, mask0


def test_known_pixels_are_exact_and_evaluations_are_counted():
    image, mask0 = _inputs()
    seen = []

    def model(x, t):
        seen.append(int(t[0]))
        return torch.sin(3 * x)  # any ε prediction

    out = repaint_inpaint(model, SCHEDULE, image, mask0, 5, torch.Generator().manual_seed(1))
    assert out.network_evaluations_per_image == 5 == len(seen)
    assert seen == sorted(seen, reverse=True) and seen[0] > 900 and seen[-1] == 0
    assert torch.equal(out.image * mask0, image * mask0)
    assert not torch.allclose(out.image * (1 - mask0), image * (1 - mask0))


def test_pasting_samples_the_forward_process_on_known_pixels():
    from diffrepro.core.samplers import StepState

    image, mask0 = _inputs()
    rand = torch.randn_like(image)
    state = StepState(
        i=0, t_index=3, timestep=600, alpha_bar=0.2, alpha_bar_prev=0.45, x=rand, model_output=rand,
        eps=rand, x0=rand, mean=rand, variance=torch.full_like(rand, 0.1), noise=rand,
    )  # fmt: skip
    out = pasting_callback(image, mask0)(state)
    known = mask0.expand_as(image).bool()
    np.testing.assert_allclose(out.mean[known], (0.45**0.5 * image)[known], rtol=1e-6)
    np.testing.assert_allclose(out.variance[known], 0.55, rtol=1e-6)
    assert torch.equal(out.mean[~known], rand[~known]) and bool((out.variance[~known] == 0.1).all())
