"""The ADIR step: the y_t identity, residual reduction, projection, and s = 0 = unguided."""

import pytest
import torch

from diffrepro.adir.guidance import (
    GuidanceConfig,
    adir_callback,
    eps_at_index,
    guidance_gradient,
    guided_mean,
    noisy_measurement,
)
from diffrepro.adir.operators import spectral_norm_sq
from diffrepro.adir.tasks import make_operator
from diffrepro.core.samplers import sample_ddpm
from diffrepro.core.schedules import Schedule, space_timesteps

SIZE = 8
SHAPE = (2, 3, SIZE, SIZE)


def rand(seed, shape=SHAPE):
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("task", ["sr2", "deblur_gauss", "inpaint_random", "colorize"])
@pytest.mark.parametrize("alpha_bar", [0.9, 0.3, 0.01])
def test_noisy_measurement_identity(task, alpha_bar):
    op = make_operator(task, SIZE)
    x_t, eps, y = rand(0), rand(1), op.forward(rand(2))
    x0_hat = (x_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5
    lhs = alpha_bar * (op.forward(x0_hat) - y).pow(2).sum()
    rhs = (op.forward(x_t) - noisy_measurement(op, y, eps, alpha_bar)).pow(2).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("task", ["sr4_pool", "sr4", "deblur_uniform", "inpaint_box", "colorize"])
def test_guidance_strictly_reduces_residual_in_admissible_range(task):
    # A μ' - y_t = (I - 2 s σ² A Aᵀ)(A μ - y_t): smaller for 0 < s σ² λ_max < 1, monotone up to 1/2.
    op = make_operator(task, SIZE)
    mean, y_t = rand(3), op.forward(rand(4))
    variance = torch.full(SHAPE, 0.05, dtype=torch.float64)
    lam = spectral_norm_sq(op, SHAPE)
    grad = guidance_gradient(op, mean, y_t)

    def residual(fraction):  # fraction = s σ² λ_max
        scale = fraction / (0.05 * lam)
        return float((op.forward(guided_mean(mean, variance, grad, scale)) - y_t).norm())

    unguided = residual(0.0)
    assert all(residual(f) < unguided for f in (0.01, 0.3, 0.7, 0.99))
    rising = [residual(f) for f in (0.0, 0.1, 0.25, 0.4, 0.5)]
    assert all(b < a for a, b in zip(rising, rising[1:])), rising


def test_mask_projection_step_gives_exact_consistency():
    op = make_operator("inpaint_random", SIZE)
    mean, y_t = rand(5), op.forward(rand(6))
    sigma2 = 0.07
    grad = guidance_gradient(op, mean, y_t)
    projected = guided_mean(
        mean, torch.full(SHAPE, sigma2, dtype=torch.float64), grad, 1 / (2 * sigma2)
    )
    torch.testing.assert_close(op.forward(projected), y_t, rtol=0, atol=1e-14)


def test_no_gradient_when_the_mean_explains_the_measurement():
    op = make_operator("denoise", SIZE)
    mean = rand(7)
    assert guidance_gradient(op, mean, mean).abs().max() == 0


def test_likelihood_gradient_scaling_and_its_error():
    op = make_operator("sr2_pool", SIZE)
    mean, y_t = rand(8), op.forward(rand(9))
    plain = guidance_gradient(op, mean, y_t)
    scaled = guidance_gradient(op, mean, y_t, gradient="likelihood", alpha_bar=0.5, noise_sigma=0.1)
    torch.testing.assert_close(scaled, plain / (2 * 0.01 * 0.5))
    with pytest.raises(ValueError, match="sigma > 0"):
        guidance_gradient(op, mean, y_t, gradient="likelihood")
    with pytest.raises(ValueError, match="eps_source"):
        GuidanceConfig(eps_source="fresh")


ALPHA_BAR = torch.tensor(Schedule.named("linear", 1000).alphas_cumprod)


def toy_model(x, t):
    """The exact ε-predictor for data ~ N(0, 0.25 I): a stable stand-in for a network."""
    abar = ALPHA_BAR[t].to(x).view(-1, 1, 1, 1)
    return (1 - abar).sqrt() * x / (0.25 * abar + 1 - abar)


def run(callback, seed=0, variance="fixed_small", model=toy_model, steps="10"):
    schedule = Schedule.named("linear", 1000).respace(space_timesteps(1000, steps))
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))
    return sample_ddpm(
        model,
        x_T,
        schedule,
        variance=variance,
        callback=callback,
        generator=torch.Generator().manual_seed(seed + 1),
    )


def learned_model(x, t):
    return torch.cat([toy_model(x, t), torch.tanh(x)], dim=1)


@pytest.mark.parametrize("variance", ["fixed_small", "learned_range"])
def test_scale_zero_reproduces_unguided_sampler_bit_for_bit(variance):
    model = learned_model if variance == "learned_range" else toy_model
    op = make_operator("sr2", SIZE)
    y = op.forward(torch.rand(SHAPE))
    guided = run(adir_callback(op, y, GuidanceConfig(scale=0.0)), variance=variance, model=model)
    assert torch.equal(guided, run(None, variance=variance, model=model))


def test_reevaluated_eps_uses_the_model_and_changes_the_result():
    schedule = Schedule.named("linear", 1000).respace(space_timesteps(1000, "10"))
    op = make_operator("inpaint_box", SIZE)
    y = op.forward(torch.rand(SHAPE))
    calls = []

    def counted(x, t):
        calls.append(int(t[0]))
        return toy_model(x, t)

    cfg = GuidanceConfig(scale=5.0, eps_source="reevaluate")
    with pytest.raises(ValueError, match="eps_model"):
        adir_callback(op, y, cfg)
    callback = adir_callback(op, y, cfg, eps_model=eps_at_index(counted, schedule))
    reeval = run(callback, model=counted)
    assert len(calls) == 2 * len(schedule) - 1  # one extra call per step except the last
    reuse = run(adir_callback(op, y, GuidanceConfig(scale=5.0)))
    assert not torch.equal(reeval, reuse)


@pytest.mark.parametrize("variance", ["fixed_small", "learned_range"])
def test_guided_sampling_reduces_measurement_residual(variance):
    model = learned_model if variance == "learned_range" else toy_model
    op = make_operator("inpaint_box", SIZE)
    y = op.forward(torch.rand(SHAPE) * 2 - 1)
    free = run(None, variance=variance, model=model, steps="50")
    callback = adir_callback(op, y, GuidanceConfig(scale=2.0))
    guided = run(callback, variance=variance, model=model, steps="50")
    assert (op.forward(guided) - y).norm() < 0.6 * (op.forward(free) - y).norm()


def _state(t_index=3, alpha_bar=0.3, alpha_bar_prev=0.6):
    from diffrepro.core.samplers import StepState

    x, eps, mean = rand(20), rand(21), rand(22)
    variance = torch.full(SHAPE, 0.04, dtype=torch.float64)
    return StepState(
        i=0, t_index=t_index, timestep=10 * t_index, alpha_bar=alpha_bar,
        alpha_bar_prev=alpha_bar_prev, x=x, model_output=eps, eps=eps, x0=x, mean=mean,
        variance=variance, noise=None,
    )  # fmt: skip


def _expected_mean(op, y, state, eps, abar, scale, sigma):
    """float64 re-derivation: y_t = √ᾱ y + √(1-ᾱ) A ε, g = -Aᵀ(Aμ - y_t)/(σ² ᾱ), μ + sΣg."""
    y_t = abar**0.5 * y + (1 - abar) ** 0.5 * op.forward(eps)
    grad = -op.adjoint(op.forward(state.mean) - y_t) / (sigma**2 * abar)
    return state.mean + scale * state.variance * grad


@pytest.mark.parametrize("level", ["next", "current"])
def test_level_picks_the_alpha_bar_of_the_sampled_variable(level):
    op = make_operator("sr2", SIZE)
    y = op.forward(rand(23))
    state = _state()
    cfg = GuidanceConfig(scale=0.7, gradient="likelihood", level=level)
    out = adir_callback(op, y, cfg, noise_sigma=0.1)(state)
    abar = state.alpha_bar_prev if level == "next" else state.alpha_bar
    expected = _expected_mean(op, y, state, state.eps, abar, 0.7, 0.1)
    torch.testing.assert_close(out.mean, expected, rtol=1e-12, atol=1e-12)
    assert GuidanceConfig().level == "next"  # the spec's default: ᾱ_{t-1}


def test_reevaluate_calls_the_model_at_the_mean_and_the_next_index():
    op = make_operator("inpaint_random", SIZE)
    y = op.forward(rand(24))
    calls, fresh = [], rand(25)

    def eps_model(x, index):
        calls.append((x, index))
        return fresh

    cfg = GuidanceConfig(scale=0.5, eps_source="reevaluate")
    callback = adir_callback(op, y, cfg, eps_model=eps_model)
    state = _state(t_index=4)
    out = callback(state)
    assert len(calls) == 1 and calls[0][0] is state.mean and calls[0][1] == 3
    y_t = state.alpha_bar_prev**0.5 * y + (1 - state.alpha_bar_prev) ** 0.5 * op.forward(fresh)
    expected = state.mean - 0.5 * state.variance * 2 * op.adjoint(op.forward(state.mean) - y_t)
    torch.testing.assert_close(out.mean, expected, rtol=1e-12, atol=1e-12)
    callback(_state(t_index=0))  # the last step reuses the step's ε: no extra call
    assert len(calls) == 1


def test_eps_at_index_feeds_the_original_timestep():
    schedule = Schedule.named("linear", 1000).respace(space_timesteps(1000, "10"))
    seen = []

    def model(x, t):
        seen.append(t.tolist())
        return toy_model(x, t)

    x = rand(26).float()
    eps = eps_at_index(model, schedule)(x, 4)
    t = int(schedule.timesteps[4])
    assert seen == [[t, t]] and t != 4
    torch.testing.assert_close(eps, toy_model(x, torch.tensor([t, t])))
