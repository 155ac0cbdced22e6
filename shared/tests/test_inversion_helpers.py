"""``ddim_affine`` and ``strength_timesteps`` (added for EDICT; shared by editing papers)."""

import numpy as np
import pytest
import torch

from diffrepro.core.samplers import ddim_affine, ddim_mean_variance
from diffrepro.core.schedules import Schedule, spaced_timesteps, strength_timesteps


def test_ddim_affine_is_the_eta0_ddim_step():
    abar = Schedule.named("scaled_linear", 1000).alphas_cumprod
    x = torch.randn(3, 4, dtype=torch.float64)
    eps = torch.randn(3, 4, dtype=torch.float64)
    for t, t_prev in [(980, 960), (500, 480), (20, 0), (0, 0)]:
        a_t, a_p = abar[t], abar[t_prev]
        x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        mean, _ = ddim_mean_variance(x0, eps, a_t, a_p)
        a, b = ddim_affine(a_t, a_p)
        torch.testing.assert_close(a * x + b * eps, mean, rtol=1e-13, atol=1e-13)
        assert a == pytest.approx(np.sqrt(a_p / a_t), rel=1e-15)
    assert ddim_affine(abar[0], abar[0]) == (1.0, 0.0)  # EDICT's last step: the identity


def test_ddim_affine_rejects_bad_levels():
    with pytest.raises(ValueError, match="alpha-bars"):
        ddim_affine(0.0, 0.5)


def test_strength_timesteps_follows_int_truncation():
    grid = spaced_timesteps(1000, 50, "leading", 0)
    active = strength_timesteps(grid, 0.8)
    assert len(active) == 40 and active[0] == 780 and active[-1] == 0
    assert len(strength_timesteps(grid, 0.7)) == 35
    assert strength_timesteps(grid, 0.7)[0] == 680
    assert len(strength_timesteps(grid, 0.58)) == 28  # int(28.999...) as the reference codes
    assert np.array_equal(strength_timesteps(grid, 1.0), grid)
    for bad in (0.0, -0.1, 1.5, 0.01):
        with pytest.raises(ValueError):
            strength_timesteps(grid, bad)
