"""Parity with diffusers' DDPMScheduler / DDIMScheduler: betas, grids and single steps.

diffusers keeps its schedule in float32 (float32 cumprod); our float64 alpha-bars agree with it to
1e-6 relative (tested), and the step tests build our schedule from diffusers' own alphas_cumprod
(``Schedule.from_alphas_cumprod``) so that they compare the step math alone, to 1e-6 relative to the
magnitude of the outputs (x0 reaches ~60 at t = 981, where one float32 ulp is 4e-6).
"""

import numpy as np
import pytest
import torch

from diffrepro.core.samplers import invert_ddim, sample_ddim, sample_ddpm
from diffrepro.core.schedules import Schedule, linear_betas, scaled_linear_betas, spaced_timesteps

pytestmark = pytest.mark.parity
diffusers = pytest.importorskip("diffusers")

SD = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    set_alpha_to_one=False,
    clip_sample=False,
)
CONFIGS = {"sd": SD, "defaults": {}}
STEPS = 50


def _ours(scheduler, *, own_alphas: bool = False) -> tuple[Schedule, np.ndarray, float]:
    """Our schedule (float64 formulas, or diffusers' alpha-bars), grid and final alpha-bar."""
    cfg = scheduler.config
    betas = {"scaled_linear": scaled_linear_betas, "linear": linear_betas}[cfg.beta_schedule]
    sched = Schedule.from_betas(betas(cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end))
    if own_alphas:
        sched = Schedule.from_alphas_cumprod(scheduler.alphas_cumprod)
    grid = spaced_timesteps(cfg.num_train_timesteps, STEPS, cfg.timestep_spacing, cfg.steps_offset)
    final = 1.0 if cfg.get("set_alpha_to_one", True) else sched.alphas_cumprod[0]
    return sched, grid, final


def _assert_close(got, expected):
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6 * scale)


def _constant(output):
    return lambda x, t: output


def _tensors(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)


@pytest.mark.parametrize("name", CONFIGS)
def test_betas_and_alpha_bars_match(name):
    ref = diffusers.DDIMScheduler(**CONFIGS[name])
    sched, _, _ = _ours(ref)
    np.testing.assert_allclose(sched.betas, ref.betas.double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(sched.alphas_cumprod, ref.alphas_cumprod.double().numpy(), rtol=1e-6)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("steps", [1, 10, 50, 999, 1000])
@pytest.mark.parametrize("cls", ["DDIMScheduler", "DDPMScheduler"])
def test_timestep_grids_identical(cls, steps, offset, spacing):
    ref = getattr(diffusers, cls)(timestep_spacing=spacing, steps_offset=offset)
    if spacing == "leading" and offset and steps == 1000:
        pytest.skip("diffusers itself produces timestep 1000 here")
    ref.set_timesteps(steps)
    ours = spaced_timesteps(1000, steps, spacing, steps_offset=offset)
    np.testing.assert_array_equal(ours, ref.timesteps.numpy())


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_matches(name, prediction, eta):
    ref = diffusers.DDIMScheduler(**CONFIGS[name], prediction_type=prediction)
    ref.set_timesteps(STEPS)
    sched, grid, final = _ours(ref, own_alphas=True)
    ours_pred = {"epsilon": "eps", "v_prediction": "v"}[prediction]
    clip = 1.0 if ref.config.clip_sample else None
    for k in (0, 25, STEPS - 1):
        t = int(grid[k])
        sample, output = _tensors(k)
        noise = torch.randn(sample.shape, generator=torch.Generator().manual_seed(100 + k))
        expected = ref.step(output, t, sample, eta=eta, variance_noise=noise)
        a_prev = sched.alphas_cumprod[grid[k + 1]] if k + 1 < len(grid) else final
        x0s = []
        got = sample_ddim(
            _constant(output),
            sample,
            sched,
            timesteps=[t],
            final_alpha_cumprod=a_prev,
            eta=eta,
            prediction=ours_pred,
            clip_x0=clip,
            generator=torch.Generator().manual_seed(100 + k),
            callback=lambda st, seen=x0s: seen.append(st.x0),
        )
        _assert_close(got, expected.prev_sample)
        _assert_close(x0s[0], expected.pred_original_sample)


def test_ddim_clipped_model_output_matches():
    ref = diffusers.DDIMScheduler()  # clip_sample=True by default
    ref.set_timesteps(STEPS)
    sched, grid, _ = _ours(ref, own_alphas=True)
    sample, output = _tensors(7)
    sample = 3 * sample  # make the clip bite
    t = int(grid[10])
    expected = ref.step(output, t, sample, use_clipped_model_output=True).prev_sample
    got = sample_ddim(
        _constant(output),
        sample,
        sched,
        timesteps=[t],
        final_alpha_cumprod=sched.alphas_cumprod[grid[11]],
        clip_x0=1.0,
        eps_from_clipped_x0=True,
    )
    _assert_close(got, expected)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("name", CONFIGS)
def test_ddpm_step_matches(name, prediction):
    ref = diffusers.DDPMScheduler.from_config({**CONFIGS[name], "prediction_type": prediction})
    ref.set_timesteps(STEPS)
    sched, grid, _ = _ours(ref, own_alphas=True)
    spaced = sched.respace(grid)
    ours_pred = {"epsilon": "eps", "v_prediction": "v"}[prediction]
    clip = 1.0 if ref.config.clip_sample else None
    for k in (0, 25, STEPS - 1):
        t = int(grid[k])
        sample, output = _tensors(k)
        expected = ref.step(
            output, t, sample, generator=torch.Generator().manual_seed(k)
        ).prev_sample
        index = len(grid) - 1 - k
        states = []
        final = sample_ddpm(
            _constant(output),
            sample,
            spaced,
            start_index=index,
            prediction=ours_pred,
            clip_x0=clip,
            generator=torch.Generator().manual_seed(k),
            callback=states.append,
        )
        assert states[0].timestep == t
        got = states[1].x if index > 0 else final
        _assert_close(got, expected)


def test_q_sample_matches_add_noise():
    ref = diffusers.DDPMScheduler(**{k: v for k, v in SD.items() if k != "set_alpha_to_one"})
    sched, _, _ = _ours(ref)
    x0, noise = _tensors(3)
    t = torch.tensor([1, 999])
    _assert_close(sched.q_sample(x0, t, noise), ref.add_noise(x0, noise, t))


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddim_inverse_step_matches(prediction):
    ref = diffusers.DDIMInverseScheduler(**SD, prediction_type=prediction)
    ref.set_timesteps(STEPS)
    sched, grid, final = _ours(ref, own_alphas=True)
    np.testing.assert_array_equal(ref.timesteps.numpy(), grid[::-1])
    ours_pred = {"epsilon": "eps", "v_prediction": "v"}[prediction]
    for k in (0, 1, 25, STEPS - 1):  # position in the ascending grid
        tau = int(grid[::-1][k])
        sample, output = _tensors(k)
        expected = ref.step(output, tau, sample).prev_sample
        a_from = sched.alphas_cumprod[grid[::-1][k - 1]] if k > 0 else final
        got = invert_ddim(
            _constant(output),
            sample,
            sched,
            timesteps=[tau],
            final_alpha_cumprod=a_from,
            prediction=ours_pred,
        )
        _assert_close(got, expected)
