"""Losses: targets, P2 weighting, the variational bound against a direct float64 computation."""

import math

import numpy as np
import pytest
import torch

from diffrepro.core.losses import (
    diffusion_loss,
    discretized_gaussian_log_likelihood,
    p2_weights,
    prediction_target,
    sample_timesteps,
    vb_term_bits,
    weighted_mse,
)
from diffrepro.core.samplers import make_generators
from diffrepro.core.schedules import Schedule, space_timesteps

SCHED = Schedule.named("linear", 1000)


def _quantised_image(seed, shape=(3, 2, 3, 3)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).double() / 127.5 - 1


def _cdf(z, mean, sd):
    return 0.5 * (1 + math.erf((z - mean) / (sd * math.sqrt(2))))


def _direct_vb_bits(x0, x_t, t, mean, log_var):
    """Element by element in Python floats: Bayes posterior, Gaussian KL, discretised decoder."""
    a, b, abar = SCHED.alphas, SCHED.betas, SCHED.alphas_cumprod
    out = []
    for row, ti in enumerate(t):
        terms = []
        for x0_e, xt_e, m2, lv2 in zip(
            x0[row].flatten().tolist(),
            x_t[row].flatten().tolist(),
            mean[row].flatten().tolist(),
            log_var[row].flatten().tolist(),
        ):
            if ti == 0:
                sd = math.exp(0.5 * lv2)
                upper = 1.0 if x0_e > 0.999 else _cdf(x0_e + 1 / 255, m2, sd)
                lower = 0.0 if x0_e < -0.999 else _cdf(x0_e - 1 / 255, m2, sd)
                terms.append(-math.log(upper - lower))
            else:
                prec = a[ti] / b[ti] + 1 / (1 - abar[ti - 1])
                m1 = (
                    math.sqrt(a[ti]) / b[ti] * xt_e
                    + math.sqrt(abar[ti - 1]) / (1 - abar[ti - 1]) * x0_e
                ) / prec
                lv1 = math.log(1 / prec)
                terms.append(
                    0.5 * (-1 + lv2 - lv1 + math.exp(lv1 - lv2) + (m1 - m2) ** 2 * math.exp(-lv2))
                )
        out.append(np.mean(terms) / math.log(2))
    return torch.tensor(out, dtype=torch.float64)


def test_vb_term_equals_direct_float64_computation():
    x0 = _quantised_image(0)
    x0[0, 0, 0, 0], x0[0, 0, 0, 1] = -1.0, 1.0  # both edge bins at t = 0
    t = torch.tensor([0, 1, 700])
    g = torch.Generator().manual_seed(1)
    x_t = SCHED.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    mean = x0 + 0.05 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    log_var = math.log(1e-3) + 0.5 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    got = vb_term_bits(SCHED, x0, x_t, t, mean, log_var, exact_cdf=True)
    torch.testing.assert_close(
        got, _direct_vb_bits(x0, x_t, t.tolist(), mean, log_var), rtol=1e-9, atol=1e-10
    )
    # ADM's tanh CDF approximation (the default) is close to the exact one
    adm = vb_term_bits(SCHED, x0, x_t, t, mean, log_var)
    torch.testing.assert_close(adm[1:], got[1:])
    assert abs(adm[0] - got[0]) < 0.01 * got[0]


def test_decoder_likelihood_sums_to_one_over_the_bins():
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    mean, log_scale = torch.full_like(levels, 0.3), torch.full_like(levels, math.log(0.2))
    probs = discretized_gaussian_log_likelihood(levels, mean, log_scale, exact_cdf=True).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)


def _no_grad(p):
    return p.grad is None or p.grad.abs().sum() == 0


def test_hybrid_loss_trains_mean_with_mse_and_variance_with_vb():
    spaced = SCHED.respace(space_timesteps(1000, "ddim10"))
    x0 = _quantised_image(2)
    pred = torch.zeros_like(x0, requires_grad=True)
    var_values = torch.zeros_like(x0, requires_grad=True)
    fed = []

    def model(x_t, timesteps):
        fed.append(timesteps)
        return torch.cat([pred, var_values], dim=1)

    t = torch.tensor([0, 4, 9])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    terms = diffusion_loss(model, x0, t, spaced, noise=noise, variance="learned_range")
    assert torch.equal(
        fed[0], torch.tensor(spaced.timesteps)[t]
    )  # original timesteps reach the model
    torch.testing.assert_close(terms["loss"], terms["mse"] + terms["vb"])
    terms["vb"].sum().backward(retain_graph=True)
    assert _no_grad(pred) and var_values.grad.abs().sum() > 0
    pred.grad = var_values.grad = None
    terms["mse"].sum().backward()
    assert _no_grad(var_values) and pred.grad.abs().sum() > 0


def test_vb_kl_vanishes_for_the_true_posterior():
    x0 = _quantised_image(4)
    t = torch.tensor([1, 2, 999])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = lambda x_t, ts: torch.cat([noise, -torch.ones_like(noise)], dim=1)  # noqa: E731  true eps, v = -1
    terms = diffusion_loss(exact, x0, t, SCHED, noise=noise, variance="learned_range")
    assert terms["vb"].abs().max() < 1e-12 and terms["mse"].abs().max() == 0


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_targets_and_perfect_models_give_zero_loss(prediction):
    x0 = _quantised_image(6)
    t = torch.tensor([3, 300, 900])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    target = prediction_target(SCHED, x0, noise, t, prediction)
    x_t = SCHED.q_sample(x0, t, noise)
    torch.testing.assert_close(SCHED.convert(x_t, t, target, prediction, "x0"), x0)
    terms = diffusion_loss(lambda x, ts: target, x0, t, SCHED, noise=noise, prediction=prediction)
    assert terms["loss"].abs().max() < 1e-20 and "vb" not in terms


def test_p2_weights():
    w = p2_weights(SCHED, gamma=1.0, k=1.0)
    np.testing.assert_allclose(w, 1 / (1 + SCHED.snr))
    assert np.all(np.diff(w) >= 0)
    assert w[0] == pytest.approx(1e-4, rel=0.05) and w[-1] == pytest.approx(
        1.0, abs=1e-3
    )  # VIDM spec values
    np.testing.assert_array_equal(p2_weights(SCHED, gamma=0.0), np.ones(1000))
    out, target = torch.zeros(2, 3), torch.ones(2, 3)
    t = torch.tensor([0, 999])
    torch.testing.assert_close(
        weighted_mse(out, target, t, w), torch.tensor(w[[0, 999]], dtype=torch.float32)
    )
    with pytest.raises(ValueError, match="timestep"):
        weighted_mse(out, target, weights=w)


def test_sample_timesteps_per_sample_and_uniform():
    batch = sample_timesteps(4, 1000, generator=make_generators([1, 2, 3, 4]))
    for k, seed in enumerate([1, 2, 3, 4]):
        assert sample_timesteps(1, 1000, generator=make_generators([seed]))[0] == batch[k]
    draws = sample_timesteps(20_000, 10, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=10).double()
    assert draws.min() >= 0 and draws.max() <= 9 and counts.min() > 0
    chi2 = (((counts - 2000) ** 2) / 2000).sum().item()
    assert chi2 < 27.9  # 99.9 % quantile of chi-square with 9 degrees of freedom
