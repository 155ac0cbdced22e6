"""Schedules: beta formulas, conversions, posterior, variances and respacing."""

import math

import numpy as np
import pytest
import torch

from diffrepro.core.schedules import (
    Schedule,
    cosine_betas,
    linear_betas,
    named_betas,
    quadratic_betas,
    scaled_linear_betas,
    space_timesteps,
    spaced_timesteps,
)


def _x(shape=(3, 2, 4, 4), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_linear_and_adm_scaling():
    assert np.allclose(linear_betas(1000)[[0, -1]], [1e-4, 0.02], rtol=0, atol=1e-15)
    assert np.allclose(linear_betas(250, scale_with_steps=True)[[0, -1]], [4e-4, 0.08])
    assert np.array_equal(named_betas("linear", 1000), linear_betas(1000))


def test_cosine_matches_alpha_bar_formula_and_clips():
    T, s = 1000, 0.008
    abar = np.cumprod(1 - cosine_betas(T, s))
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    expected = np.array([f((i + 1) / T) / f(0) for i in range(T)])
    unclipped = slice(0, 990)  # the last betas hit max_beta
    assert np.allclose(abar[unclipped], expected[unclipped], rtol=1e-10)
    assert cosine_betas(T).max() == pytest.approx(0.999)
    assert cosine_betas(T, max_beta=0.5).max() == pytest.approx(0.5)


def test_sqrt_linear_schedules():
    b = scaled_linear_betas(1000)
    assert np.allclose(np.diff(np.sqrt(b), 2), 0, atol=1e-15)  # linear in sqrt(beta)
    assert b[0] == pytest.approx(0.00085) and b[-1] == pytest.approx(0.012)
    # SD facts from the spec: abar_0 = 0.99915, abar_999 = 0.0046601
    abar = np.cumprod(1 - b)
    assert abar[0] == pytest.approx(0.99915) and abar[-1] == pytest.approx(0.0046601, rel=1e-4)
    # DiffMotion "quad": beta_50 ~ 0.026, beta_100 = 0.1, abar_100 ~ 0.0282
    q = quadratic_betas(100)
    assert q[0] == pytest.approx(1e-4) and q[49] == pytest.approx(0.026, abs=5e-4)
    assert np.prod(1 - q) == pytest.approx(0.0282, abs=1e-4)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown beta schedule"):
        named_betas("sigmoid", 10)
    with pytest.raises(ValueError, match="betas must lie"):
        Schedule.from_betas([0.1, 1.5])
    with pytest.raises(ValueError, match="prediction type"):
        Schedule.from_betas(linear_betas(10)).convert(_x(), 0, _x(), "eps", "score")
    with pytest.raises(ValueError, match="not all in this schedule"):
        Schedule.from_betas(linear_betas(10)).respace([3, 12])


def test_conversions_round_trip_in_float64():
    sched = Schedule.named("cosine", 1000)
    x0, eps = _x(seed=1), _x(seed=2)
    t = torch.tensor([0, 500, 999])
    x_t = sched.q_sample(x0, t, eps)
    v = sched.v_target(x0, eps, t)
    truth = {"eps": eps, "x0": x0, "v": v}
    for source in truth:
        for target in truth:
            got = sched.convert(x_t, t, truth[source], source, target)
            assert got.dtype == torch.float64
            torch.testing.assert_close(got, truth[target], rtol=1e-9, atol=1e-9)
    # a cycle through all three comes back to float64 precision
    back = sched.convert(
        x_t,
        t,
        sched.convert(x_t, t, sched.convert(x_t, t, eps, "eps", "x0"), "x0", "v"),
        "v",
        "eps",
    )
    torch.testing.assert_close(back, eps, rtol=1e-12, atol=1e-12)


def test_posterior_matches_bayes_rule():
    sched = Schedule.named("linear", 100)
    x0, x_t = _x(seed=3), _x(seed=4)
    t = torch.tensor([1, 50, 99])
    mean, var, log_var = sched.posterior_mean_variance(x0, x_t, t)
    # Bayes: q(x_{t-1}|x_t,x0) ~ N(x_t; sqrt(a_t) x_{t-1}, b_t) N(x_{t-1}; sqrt(abar_{t-1}) x0, .)
    a, b, abar = sched.alphas, sched.betas, sched.alphas_cumprod
    for row, ti in enumerate(t.tolist()):
        prec = a[ti] / b[ti] + 1 / (1 - abar[ti - 1])
        m = (
            math.sqrt(a[ti]) / b[ti] * x_t[row]
            + math.sqrt(abar[ti - 1]) / (1 - abar[ti - 1]) * x0[row]
        ) / prec
        torch.testing.assert_close(mean[row], m, rtol=1e-12, atol=1e-12)
        assert torch.allclose(var[row], torch.tensor(1 / prec, dtype=torch.float64), rtol=1e-12)
        assert torch.allclose(log_var[row], torch.tensor(math.log(1 / prec), dtype=torch.float64))
    # index 0: the posterior is exact (variance 0), the clipped log variance stays finite
    mean0, var0, log0 = sched.posterior_mean_variance(x0, x_t, 0)
    torch.testing.assert_close(mean0, x0)
    assert var0.abs().max() == 0 and torch.isfinite(log0).all()


def test_model_variance_kinds():
    sched = Schedule.named("linear", 1000)
    x, t = _x(), torch.tensor([0, 10, 999])
    small, _ = sched.model_variance(t, x, "fixed_small")
    large, _ = sched.model_variance(t, x, "fixed_large")
    hi, _ = sched.model_variance(t, x, "learned_range", torch.ones_like(x))
    lo, log_lo = sched.model_variance(t, x, "learned_range", -torch.ones_like(x))
    torch.testing.assert_close(hi[1:, 0, 0, 0], torch.tensor(sched.betas[[10, 999]]))
    torch.testing.assert_close(
        log_lo[:, 0, 0, 0], torch.tensor(sched.posterior_log_variance_clipped[[0, 10, 999]])
    )
    assert torch.all(large[1:] >= small[1:]) and torch.all(hi[1:] >= lo[1:])
    mid, _ = sched.model_variance(t, x, "learned_range", torch.zeros_like(x))
    torch.testing.assert_close(mid, (hi * lo).sqrt())  # geometric mean: log-space interpolation
    log_v = _x(seed=5)
    torch.testing.assert_close(sched.model_variance(t, x, "learned", log_v)[1], log_v)
    with pytest.raises(ValueError, match="variance channels"):
        sched.model_variance(t, x, "learned_range")


def test_space_timesteps_semantics():
    assert space_timesteps(1000, "ddim100") == list(range(0, 1000, 10))
    assert space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    kept = space_timesteps(1000, "100")
    assert len(kept) == 100 and kept[0] == 0 and kept[-1] == 999
    kept = space_timesteps(300, "10,5")
    assert (
        len(kept) == 15
        and kept[:1] == [0]
        and kept[9] == 149
        and kept[10] == 150
        and kept[-1] == 299
    )
    assert space_timesteps(10, [10]) == list(range(10))
    with pytest.raises(ValueError, match="bad respacing"):
        space_timesteps(1000, "fast")
    with pytest.raises(ValueError, match="exactly"):
        space_timesteps(1000, "ddim999")


def test_diffusers_style_grids():
    lead = spaced_timesteps(1000, 50, "leading", steps_offset=1)
    assert lead[0] == 981 and lead[-1] == 1 and np.all(np.diff(lead) == -20)
    trail = spaced_timesteps(1000, 50, "trailing")
    assert trail[0] == 999 and trail[-1] == 19
    lin = spaced_timesteps(1000, 10, "linspace")
    assert lin[0] == 999 and lin[-1] == 0 and len(set(lin.tolist())) == 10
    with pytest.raises(ValueError, match="spacing"):
        spaced_timesteps(1000, 10, "middle")


@pytest.mark.parametrize(
    "kept", [space_timesteps(1000, "ddim50"), space_timesteps(1000, "10,10,10"), [999]]
)
def test_respacing_keeps_alpha_bars(kept):
    sched = Schedule.named("linear", 1000)
    spaced = sched.respace(kept)
    assert np.array_equal(spaced.timesteps, np.sort(kept))
    np.testing.assert_allclose(
        spaced.alphas_cumprod, sched.alphas_cumprod[np.sort(kept)], rtol=1e-10
    )
    assert spaced.num_train_timesteps == 1000
    # respacing a respaced schedule composes
    again = spaced.respace(spaced.timesteps[::2])
    np.testing.assert_allclose(
        again.alphas_cumprod, sched.alphas_cumprod[again.timesteps], rtol=1e-10
    )


def test_from_alphas_cumprod_and_snr():
    sched = Schedule.named("scaled_linear", 1000)
    copy = Schedule.from_alphas_cumprod(torch.tensor(sched.alphas_cumprod))
    np.testing.assert_allclose(copy.alphas_cumprod, sched.alphas_cumprod, rtol=1e-13)
    assert np.all(np.diff(sched.snr) < 0)
    np.testing.assert_allclose(sched.snr, sched.alphas_cumprod / (1 - sched.alphas_cumprod))
