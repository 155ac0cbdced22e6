"""Samplers checked against closed forms.

For data x0 ~ N(mu, s2 I) the optimal eps predictor is analytic: with a = sqrt(abar_t),
sig = sqrt(1 - abar_t), x_t ~ N(a mu, a^2 s2 + sig^2) and
E[eps | x_t] = sig (x_t - a mu) / (a^2 s2 + sig^2).

DDIM (eta = 0) is Euler on dxbar/dsigbar = eps (xbar = x/a, sigbar = sig/a); with the exact eps of
a Gaussian one DDIM step is the linear map x' = (a' a s2 + sig' sig) / (a^2 s2 + sig^2) x (mu = 0),
while the exact probability-flow map is x' = sqrt(v'/v) x with v = a^2 s2 + sig^2. So DDIM is exact
when the predicted x0 is constant along the flow, i.e. for a point mass (s2 = 0), and for s2 > 0
converges to the flow at first order. Both facts are tested, to float64 precision.
"""

import dataclasses

import numpy as np
import pytest
import torch

from diffrepro.core.samplers import (
    cfg_model,
    invert_ddim,
    make_generators,
    per_sample_noise,
    sample_ddim,
    sample_ddpm,
)
from diffrepro.core.schedules import Schedule, space_timesteps, spaced_timesteps

T = 1000
SCHED = Schedule.named("linear", T)


def gaussian_model(s2, mu=0.0, prediction="eps", learned=None, sched=SCHED):
    """The exact predictor for N(mu, s2) data under ``sched``, given the ORIGINAL timestep."""
    abar_table = torch.tensor(sched.alphas_cumprod)

    def model(x, t):
        abar = abar_table[t.cpu()].to(x).reshape(-1, *[1] * (x.ndim - 1))
        a, sig = abar.sqrt(), (1 - abar).sqrt()
        eps = sig * (x - a * mu) / (abar * s2 + 1 - abar)
        out = {"eps": eps, "x0": (x - sig * eps) / a, "v": a * eps - sig * (x - sig * eps) / a}[
            prediction
        ]
        if learned is not None:
            out = torch.cat([out, torch.full_like(out, learned)], dim=1)
        return out

    return model


def noise(n, dim=1, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_ddim_is_exact_for_a_point_mass():
    mu = 0.7
    sched = Schedule.named("scaled_linear", T)
    grid = spaced_timesteps(T, 10, "leading", steps_offset=1)
    abar = sched.alphas_cumprod
    x_T = noise(5)
    z = (x_T - abar[grid[0]] ** 0.5 * mu) / (1 - abar[grid[0]]) ** 0.5
    seen = []
    out = sample_ddim(
        gaussian_model(0.0, mu, sched=sched),
        x_T,
        sched,
        timesteps=grid,
        final_alpha_cumprod=abar[0],
        callback=lambda st: seen.append((st.alpha_bar_prev, st.x0)),
    )
    for _, x0 in seen:
        torch.testing.assert_close(x0, torch.full_like(x0, mu), rtol=0, atol=1e-12)
    # every intermediate sample lies on the exact flow a mu + sig z; the end is at level abar_0
    torch.testing.assert_close(
        out, abar[0] ** 0.5 * mu + (1 - abar[0]) ** 0.5 * z, rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("s2", [0.25, 4.0])
def test_ddim_equals_closed_form_and_converges_to_probability_flow(s2):
    x_T = noise(8)
    abar = SCHED.alphas_cumprod
    v = abar * s2 + 1 - abar
    errors = []
    for n in (10, 20, 40, 80):
        grid = spaced_timesteps(T, n, "trailing")
        out = sample_ddim(gaussian_model(s2), x_T, SCHED, timesteps=grid)
        levels = [abar[t] for t in grid] + [1.0]
        ratio = np.prod(
            [
                (
                    np.sqrt(levels[k + 1] * levels[k]) * s2
                    + np.sqrt((1 - levels[k + 1]) * (1 - levels[k]))
                )
                / (levels[k] * s2 + 1 - levels[k])
                for k in range(len(grid))
            ]
        )
        torch.testing.assert_close(out, ratio * x_T, rtol=1e-12, atol=0)
        flow = np.sqrt(s2 / v[grid[0]]) * x_T  # exact probability-flow map from level grid[0] to 0
        errors.append((out - flow).abs().max().item())
    # first order: the error halves when the step count doubles
    rates = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((rates > 1.7) & (rates < 2.3)), rates


def _ddpm_variance_recursion(sched: Schedule, s2: float, step_var: np.ndarray) -> float:
    """Exact variance of the ancestral chain's output for N(0, s2) data, x_T ~ N(0, 1)."""
    var = 1.0
    abar, abar_prev = sched.alphas_cumprod, sched.alphas_cumprod_prev
    for t in range(len(sched) - 1, -1, -1):
        gain_x0 = np.sqrt(abar[t]) * s2 / (abar[t] * s2 + 1 - abar[t])  # x0_hat = gain * x_t
        c0 = sched.betas[t] * np.sqrt(abar_prev[t]) / (1 - abar[t])
        c1 = (1 - abar_prev[t]) * np.sqrt(sched.alphas[t]) / (1 - abar[t])
        var = (c0 * gain_x0 + c1) ** 2 * var + (step_var[t] if t > 0 else 0.0)
    return var


def test_ddpm_ancestral_produces_the_data_variance():
    s2, n = 0.25, 20_000
    out = sample_ddpm(
        gaussian_model(s2), noise(n), SCHED, generator=torch.Generator().manual_seed(1)
    )
    predicted = _ddpm_variance_recursion(SCHED, s2, SCHED.posterior_variance)
    assert abs(predicted - s2) < 0.02 * s2  # 1000 fixed-small steps give the data variance
    std_err = predicted * np.sqrt(2 / n)
    assert abs(out.var().item() - predicted) < 4 * std_err
    assert abs(out.mean().item()) < 4 * np.sqrt(predicted / n)


def test_ddpm_respaced_feeds_original_timesteps_and_matches_its_variance():
    s2, n = 0.25, 50_000
    spaced = SCHED.respace(space_timesteps(T, "25"))
    fed = []

    def model(x, t):
        fed.append(int(t[0]))
        return gaussian_model(s2)(x, t)

    out = sample_ddpm(
        model, noise(n), spaced, variance="fixed_large", generator=torch.Generator().manual_seed(2)
    )
    assert fed == spaced.timesteps[::-1].tolist() and fed[0] == 999 and fed[-1] == 0
    large = np.append(spaced.posterior_variance[1], spaced.betas[1:])
    predicted = _ddpm_variance_recursion(spaced, s2, large)
    assert abs(out.var().item() - predicted) < 4 * predicted * np.sqrt(2 / n)


def test_learned_range_endpoints_equal_fixed_variances():
    spaced = SCHED.respace(space_timesteps(T, "ddim20"))
    x_T = noise(6)

    def run(model, variance):
        return sample_ddpm(
            model, x_T, spaced, variance=variance, generator=make_generators(range(6))
        )

    torch.testing.assert_close(
        run(gaussian_model(1.0, learned=1.0), "learned_range"),
        run(gaussian_model(1.0), "fixed_large"),
    )
    torch.testing.assert_close(
        run(gaussian_model(1.0, learned=-1.0), "learned_range"),
        run(gaussian_model(1.0), "fixed_small"),
    )


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_prediction_types_give_the_same_samples(prediction):
    spaced = SCHED.respace(space_timesteps(T, "ddim25"))
    x_T = noise(6)
    for sampler in (sample_ddpm, sample_ddim):
        ref = sampler(gaussian_model(0.5), x_T, spaced, generator=make_generators(range(6)))
        got = sampler(
            gaussian_model(0.5, prediction=prediction),
            x_T,
            spaced,
            prediction=prediction,
            generator=make_generators(range(6)),
        )
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)


def test_ddim_with_eta_one_is_ddpm():
    spaced = SCHED.respace(space_timesteps(T, "ddim40"))
    x_T = noise(6)
    ddpm = sample_ddpm(gaussian_model(0.5), x_T, spaced, generator=torch.Generator().manual_seed(3))
    ddim = sample_ddim(
        gaussian_model(0.5), x_T, spaced, eta=1.0, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(ddim, ddpm, rtol=1e-10, atol=1e-10)


def smooth_model(x, t):
    """A fixed nonlinear eps model (float64), for inversion tests."""
    return torch.tanh(1.5 * x + 0.5 * torch.sin(t.to(x) / 150).reshape(-1, *[1] * (x.ndim - 1)))


def test_ddim_inversion_reconstructs_with_error_shrinking_in_steps():
    x0 = torch.randn(
        4, 3, 5, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    ).clamp(-1, 1)
    sched = Schedule.named("scaled_linear", T)
    errors = []
    for n in (10, 40, 160):
        grid = spaced_timesteps(T, n, "leading", steps_offset=1)
        final = sched.alphas_cumprod[0]
        x_T = invert_ddim(smooth_model, x0, sched, timesteps=grid, final_alpha_cumprod=final)
        assert x_T.dtype == torch.float64 and x_T.std() > 0.5  # it really reached the noise level
        back = sample_ddim(smooth_model, x_T, sched, timesteps=grid, final_alpha_cumprod=final)
        errors.append((back - x0).abs().max().item())
    assert errors[0] > 2 * errors[1] > 4 * errors[2], errors
    assert errors[2] < 2e-2


def test_inversion_is_exact_when_eps_does_not_depend_on_x():
    const = lambda x, t: torch.full_like(x, 0.3)  # noqa: E731
    x0 = noise(3, 4)
    grid = space_timesteps(T, "ddim10")[::-1]
    x_T = invert_ddim(const, x0, SCHED, timesteps=grid, progress=True)
    back = sample_ddim(const, x_T, SCHED, timesteps=grid, progress=True)
    torch.testing.assert_close(back, x0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_per_sample_seeding_is_batch_size_independent(sampler):
    spaced = SCHED.respace(space_timesteps(T, "ddim20"))
    seeds = [11, 12, 13, 14]
    x_T = per_sample_noise((4, 2, 3), make_generators(seeds), dtype=torch.float64)
    run = {
        "ddpm": lambda x, g: sample_ddpm(gaussian_model(0.5), x, spaced, generator=g),
        "ddim": lambda x, g: sample_ddim(gaussian_model(0.5), x, spaced, eta=0.5, generator=g),
    }[sampler]
    batch = run(x_T, make_generators(seeds))
    for k, seed in enumerate(seeds):
        x_k = per_sample_noise((1, 2, 3), make_generators([seed]), dtype=torch.float64)
        assert torch.equal(x_k[0], x_T[k])
        assert torch.equal(run(x_k, make_generators([seed]))[0], batch[k])
    assert not torch.equal(batch[0], batch[1])


def test_callback_reads_posterior_and_replaces_mean():
    spaced = SCHED.respace(space_timesteps(T, "ddim10"))
    x_T = noise(4)
    states = []

    def record(state):
        states.append(state)
        mean, var, _ = spaced.posterior_mean_variance(state.x0, state.x, state.t_index)
        torch.testing.assert_close(state.mean, mean)
        torch.testing.assert_close(state.variance, var)
        if state.t_index == 0:  # replace the last mean: the sampler must return it
            return dataclasses.replace(state, mean=torch.full_like(state.mean, 5.0))
        return None

    out = sample_ddpm(
        gaussian_model(0.5),
        x_T,
        spaced,
        callback=record,
        generator=torch.Generator().manual_seed(0),
    )
    assert [s.timestep for s in states] == spaced.timesteps[::-1].tolist()
    assert states[-1].noise is None and all(s.noise is not None for s in states[:-1])
    assert torch.equal(out, torch.full_like(out, 5.0))
    # a replaced mean at an intermediate step changes what the next step sees
    shift = lambda st: dataclasses.replace(st, mean=st.mean + 1.0) if st.i == 0 else None  # noqa: E731
    seen = []
    sample_ddim(
        gaussian_model(0.5), x_T, spaced, callback=lambda st: seen.append(st.x) or shift(st)
    )
    plain = sample_ddim(
        gaussian_model(0.5),
        x_T,
        spaced,
        timesteps=[9],
        final_alpha_cumprod=spaced.alphas_cumprod[8],
    )
    torch.testing.assert_close(seen[1], plain + 1.0)


def test_clip_x0_bounds_the_prediction():
    x0s = []
    sample_ddpm(
        gaussian_model(4.0),
        3 * noise(64),
        SCHED.respace(space_timesteps(T, "ddim5")),
        clip_x0=1.0,
        callback=lambda st: x0s.append(st.x0),
    )
    assert max(x.abs().max().item() for x in x0s) == 1.0


def test_cfg_model_combines_and_skips():
    calls = []

    def model(x, t, c):
        calls.append(x.shape[0])
        return torch.cat([x * c, x + c], dim=1)

    x, t = noise(3, 2), torch.tensor([5, 5, 5])
    cond, uncond = (
        torch.full((3, 1), 2.0, dtype=torch.float64),
        torch.zeros(3, 1, dtype=torch.float64),
    )
    guided = cfg_model(model, cond, uncond, 3.0, guided_channels=2)(x, t)
    out_c, out_u = model(x, t, cond), model(x, t, uncond)
    torch.testing.assert_close(guided[:, :2], out_u[:, :2] + 3.0 * (out_c[:, :2] - out_u[:, :2]))
    torch.testing.assert_close(
        guided[:, 2:], out_c[:, 2:]
    )  # variance channels from the conditional pass
    unbatched = cfg_model(model, cond, uncond, 3.0, guided_channels=2, batched=False)(x, t)
    torch.testing.assert_close(unbatched, guided)
    calls.clear()
    torch.testing.assert_close(cfg_model(model, cond, uncond, 1.0)(x, t), out_c)
    assert calls == [3]
    as_dict = cfg_model(lambda x, t, c: model(x, t, c["c"]), {"c": cond}, {"c": uncond}, 3.0)
    torch.testing.assert_close(as_dict(x, t), cfg_model(model, cond, uncond, 3.0)(x, t))
    # guidance rescale with phi = 1 restores the conditional output's per-sample std
    full = cfg_model(model, cond, uncond, 3.0, rescale=1.0)(x, t)
    torch.testing.assert_close(full.std(dim=1), out_c.std(dim=1))


def test_bad_arguments_raise_value_errors():
    x = noise(2)
    with pytest.raises(ValueError, match="DESCENDING"):
        sample_ddim(gaussian_model(1.0), x, SCHED, timesteps=[1, 5])
    with pytest.raises(ValueError, match="output channels"):
        sample_ddpm(gaussian_model(1.0), x, SCHED, variance="learned_range")
    with pytest.raises(ValueError, match="unknown prediction"):
        sample_ddpm(gaussian_model(1.0), x, SCHED, prediction="score")
    with pytest.raises(ValueError, match="generators"):
        per_sample_noise((3, 2), make_generators([1, 2]))


def test_callback_can_force_part_of_the_next_sample():
    """The RePaint recipe from the module docstring: masked pixels of x_next are set exactly."""
    spaced = SCHED.respace(space_timesteps(T, "ddim10"))
    x_T = noise(4, 6)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[:, :3] = True
    forced = []

    def paste_known(state):
        known = torch.full_like(state.mean, 0.1 * state.i)
        forced.append(known)
        return dataclasses.replace(
            state,
            mean=torch.where(mask, known, state.mean),
            variance=torch.where(mask, 0, state.variance),
        )

    seen = []
    record = lambda st: seen.append(st.x)  # noqa: E731
    gens = lambda: make_generators(range(4))  # noqa: E731
    out = sample_ddpm(gaussian_model(0.5), x_T, spaced, callback=paste_known, generator=gens())
    plain = sample_ddpm(gaussian_model(0.5), x_T, spaced, callback=record, generator=gens())
    torch.testing.assert_close(out[mask], forced[-1][mask], rtol=0, atol=0)
    # the model is elementwise, so the unmasked half follows the plain chain exactly
    torch.testing.assert_close(out[~mask], plain[~mask], rtol=0, atol=0)
    assert len(seen) == len(spaced)
