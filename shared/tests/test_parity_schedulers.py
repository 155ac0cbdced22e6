"""Parity with diffusers' DDPMScheduler / DDIMScheduler: betas, grids and single steps."""

import numpy as np
import pytest
import torch

from diffrepro.core.samplers import sample_ddim, sample_ddpm
from diffrepro.core.schedules import Schedule, scaled_linear_betas, spaced_timesteps

pytestmark = pytest.mark.parity
diffusers = pytest.importorskip("diffusers")

SD = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    steps_offset=1, set_alpha_to_one=False, clip_sample=False,
)  # fmt: skip
CONFIGS = {"sd": SD, "defaults": {}}
STEPS = 50


def _ours(scheduler) -> tuple[Schedule, np.ndarray, float]:
    """Our schedule (float64 formulas), grid and final alpha-bar for a diffusers scheduler."""
    cfg = scheduler.config
    betas = {"scaled_linear": scaled_linear_betas, "linear": np.linspace}[cfg.beta_schedule]
    if cfg.beta_schedule == "linear":
        sched = Schedule.from_betas(np.linspace(cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps))
    else:
        sched = Schedule.from_betas(betas(cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end))
    grid = spaced_timesteps(cfg.num_train_timesteps, STEPS, cfg.timestep_spacing, cfg.steps_offset)
    final = 1.0 if cfg.get("set_alpha_to_one", True) else sched.alphas_cumprod[0]
    return sched, grid, final


def _tensors(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)


@pytest.mark.parametrize("name", CONFIGS)
def test_betas_and_alpha_bars_match(name):
    ref = diffusers.DDIMScheduler(**CONFIGS[name])
    sched, _, _ = _ours(ref)
    np.testing.assert_allclose(sched.betas, ref.betas.double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(sched.alphas_cumprod, ref.alphas_cumprod.double().numpy(), rtol=1e-5)


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
    sched, grid, final = _ours(ref)
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
            lambda x, ts: output, sample, sched, timesteps=[t], final_alpha_cumprod=a_prev, eta=eta,
            prediction=ours_pred, clip_x0=clip, generator=torch.Generator().manual_seed(100 + k),
            callback=lambda st: x0s.append(st.x0),
        )  # fmt: skip
        torch.testing.assert_close(got, expected.prev_sample, rtol=0, atol=1e-6)
        torch.testing.assert_close(x0s[0], expected.pred_original_sample, rtol=0, atol=1e-6)


def test_ddim_clipped_model_output_matches():
    ref = diffusers.DDIMScheduler()  # clip_sample=True by default
    ref.set_timesteps(STEPS)
    sched, grid, _ = _ours(ref)
    sample, output = _tensors(7)
    sample = 3 * sample  # make the clip bite
    t = int(grid[10])
    expected = ref.step(output, t, sample, use_clipped_model_output=True).prev_sample
    got = sample_ddim(lambda x, ts: output, sample, sched, timesteps=[t],
                      final_alpha_cumprod=sched.alphas_cumprod[grid[11]], clip_x0=1.0,
                      eps_from_clipped_x0=True)  # fmt: skip
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("name", CONFIGS)
def test_ddpm_step_matches(name, prediction):
    ref = diffusers.DDPMScheduler.from_config({**CONFIGS[name], "prediction_type": prediction})
    ref.set_timesteps(STEPS)
    sched, grid, _ = _ours(ref)
    spaced = sched.respace(grid)
    ours_pred = {"epsilon": "eps", "v_prediction": "v"}[prediction]
    clip = 1.0 if ref.config.clip_sample else None
    for k in (0, 25, STEPS - 1):
        t = int(grid[k])
        sample, output = _tensors(k)
        expected = ref.step(output, t, sample, generator=torch.Generator().manual_seed(k)).prev_sample
        index = len(grid) - 1 - k
        states = []
        final = sample_ddpm(
            lambda x, ts: output, sample, spaced, start_index=index, prediction=ours_pred, clip_x0=clip,
            generator=torch.Generator().manual_seed(k), callback=states.append,
        )  # fmt: skip
        assert states[0].timestep == t
        got = states[1].x if index > 0 else final
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_q_sample_matches_add_noise():
    ref = diffusers.DDPMScheduler(**{k: v for k, v in SD.items() if k != "set_alpha_to_one"})
    sched, _, _ = _ours(ref)
    x0, noise = _tensors(3)
    t = torch.tensor([1, 999])
    torch.testing.assert_close(sched.q_sample(x0, t, noise), ref.add_noise(x0, noise, t), rtol=0, atol=1e-6)
