"""Spec §6 invariants on the tiny random Stable Diffusion stack (float64 unless stated)."""

import dataclasses

import numpy as np
import pytest
import torch
from edict_helpers import official_active_grid

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.core.models.stable_diffusion import SD1_SCHEDULER
from diffrepro.edict import pipeline
from diffrepro.edict.config import EDICTConfig


def rel(a, b):
    return pipeline.relative_error(a, b)


class UNetCounter:
    """Counts UNet forward calls, the rows they saw and the timesteps (forward hook)."""

    def __init__(self, unet):
        self.calls, self.rows, self.timesteps = 0, 0, []
        self.handle = unet.register_forward_hook(self.hook)

    def hook(self, module, args, output):
        self.calls += 1
        self.rows += args[0].shape[0]
        self.timesteps.append(int(args[1][0]))

    def close(self):
        self.handle.remove()


def test_eps_depends_on_x_first(sd64, latents64):
    """Precondition of the DDIM comparison: a constant eps would make DDIM inversion exact."""
    eps = pipeline.noise_predictor(sd64, "a cat", 1, EDICTConfig())
    e1, e2 = eps(latents64, 500), eps(1.5 * latents64, 500)
    assert rel(e1, e2) > 1e-2
    assert sd64.unet.conv_out.weight.abs().max() > 0


@pytest.mark.parametrize("guidance", [1.0, 3.0, 7.5])
def test_float64_round_trip_is_exact_and_ddim_inversion_is_not(sd64, latents64, guidance):
    cfg = EDICTConfig(steps=20, strength=0.8, guidance=guidance)
    x, y = pipeline.reconstruct(sd64, latents64, "a cat", cfg)
    edict_error = max(rel(x, latents64), rel(y, latents64))
    assert edict_error < 1e-10
    ddim, _ = pipeline.reconstruct(
        sd64, latents64, "a cat", dataclasses.replace(cfg, method="ddim")
    )
    assert rel(ddim, latents64) > 1e3 * max(edict_error, 1e-16)


@pytest.mark.parametrize("strength,active", [(0.8, 40), (0.7, 35)])
def test_paper_grid_round_trip_with_even_and_odd_active_steps(sd64, latents64, strength, active):
    cfg = EDICTConfig(strength=strength)  # S = 50, G = 3, p = 0.93 (paper)
    assert cfg.active_steps == active
    assert pipeline.active_timesteps(sd64, cfg).tolist() == official_active_grid(50, strength)
    x, y = pipeline.reconstruct(sd64, latents64, "a cat", cfg)
    assert max(rel(x, latents64), rel(y, latents64)) < 1e-10


def test_float32_is_nearly_exact():
    sd32 = tiny_stable_diffusion(seed=0, dtype=torch.float32)
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    cfg = EDICTConfig(steps=20, dtype="float32")
    x, _ = pipeline.reconstruct(sd32, z, "a cat", cfg)
    assert x.dtype == torch.float32
    assert 1e-10 < rel(x, z) < 1e-3


def test_strength_bookkeeping_and_unet_call_counts(sd64, latents64):
    cfg = EDICTConfig(steps=10, strength=0.5, guidance=3.0)
    assert pipeline.active_timesteps(sd64, cfg).tolist() == [400, 300, 200, 100, 0]
    counter = UNetCounter(sd64.unet)
    try:
        x, y = pipeline.invert(sd64, latents64, "a cat", cfg)
        assert (counter.calls, counter.rows) == (10, 20)  # 4 UNet rows per step with CFG
        assert counter.timesteps == [0, 0, 100, 100, 200, 200, 300, 300, 400, 400]
        counter.calls, counter.rows, counter.timesteps = 0, 0, []
        pipeline.denoise(sd64, x, y, "a cat", dataclasses.replace(cfg, guidance=1.0))
        assert (counter.calls, counter.rows) == (10, 10)  # G = 1: conditional pass only
        assert counter.timesteps == [400, 400, 300, 300, 200, 200, 100, 100, 0, 0]
        counter.calls, counter.rows = 0, 0
        pipeline.invert(sd64, latents64, "a cat", dataclasses.replace(cfg, method="ddim"))
        assert (counter.calls, counter.rows) == (5, 10)  # DDIM: half of EDICT
    finally:
        counter.close()


def test_guided_eps_is_cfg_with_the_empty_prompt(sd64, latents64):
    eps = pipeline.noise_predictor(sd64, "a cat", 1, EDICTConfig(guidance=3.0))
    t = torch.tensor([500])
    with torch.no_grad():
        e_u = sd64.unet(latents64, t, sd64.encode_prompt([""]))
        e_c = sd64.unet(latents64, t, sd64.encode_prompt(["a cat"]))
    expected = e_u + 3.0 * (e_c - e_u)
    torch.testing.assert_close(eps(latents64, 500).detach(), expected, rtol=0, atol=1e-13)


def test_two_step_denoise_by_hand(sd64, latents64):
    """grid [100, 0]: a real step to alpha-bar_0, then the identity step (mixing still runs)."""
    cfg = EDICTConfig(steps=10, strength=0.2, guidance=2.0, p=0.9)
    abar = sd64.schedule.alphas_cumprod
    z, w = latents64, latents64.flip(-1)
    cu, cc = sd64.encode_prompt([""]), sd64.encode_prompt(["a dog"])

    def eps(v, t):
        tt = torch.tensor([t])
        with torch.no_grad():
            e_u, e_c = sd64.unet(v, tt, cu), sd64.unet(v, tt, cc)
        return e_u + 2.0 * (e_c - e_u)

    a = np.sqrt(abar[0] / abar[100])
    b = np.sqrt(1 - abar[0]) - np.sqrt(abar[0] * (1 - abar[100]) / abar[100])
    xi = a * z + b * eps(w, 100)
    yi = a * w + b * eps(xi, 100)
    x1 = 0.9 * xi + 0.1 * yi
    y1 = 0.9 * yi + 0.1 * x1
    yi, xi = y1, x1  # step 1 (odd): y first, a = 1, b = 0
    x2 = 0.9 * xi + 0.1 * yi
    y2 = 0.9 * yi + 0.1 * x2
    x, y = pipeline.denoise(sd64, z, w, "a dog", cfg)
    torch.testing.assert_close(x, x2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y, y2, rtol=1e-12, atol=1e-12)


def test_edit_differs_from_reconstruction(sd64, latents64):
    cfg = EDICTConfig(steps=10)
    recon, _ = pipeline.reconstruct(sd64, latents64, "a cat", cfg)
    edited, _ = pipeline.edit(sd64, latents64, "a cat", "a dog", cfg)
    assert rel(edited, recon) > 1e-3
    assert rel(recon, latents64) < 1e-10


def test_pixel_round_trip_reaches_the_vae_floor(sd64):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    images = images.double()
    cfg = EDICTConfig(steps=10)
    z = pipeline.encode(sd64, images, cfg, torch.Generator().manual_seed(1))
    z_mean = pipeline.encode(sd64, images, dataclasses.replace(cfg, posterior="mean"))
    assert rel(z, z_mean) > 1e-4  # the official posterior sample, not the mode
    floor = torch.mean((pipeline.decode(sd64, z) - images) ** 2)
    x, _ = pipeline.reconstruct(sd64, z, ["a cat", "a dog"], cfg)
    ours = torch.mean((pipeline.decode(sd64, x) - images) ** 2)
    assert abs(float(ours - floor)) < 1e-10 * float(floor)


def test_batch_rows_are_independent(sd64, latents64):
    cfg = EDICTConfig(steps=10, strength=0.3)
    other = latents64.flip(-2)
    both, _ = pipeline.edit(sd64, torch.cat([latents64, other]), "a cat", ["a dog", "a horse"], cfg)
    one, _ = pipeline.edit(sd64, other, "a cat", "a horse", cfg)
    torch.testing.assert_close(both[1:], one, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="2 prompts for a batch of 1"):
        pipeline.invert(sd64, latents64, ["a", "b"], cfg)


def test_v_prediction_model_and_model_grid_offset_stay_exact(latents64):
    scheduler = dataclasses.replace(SD1_SCHEDULER, prediction_type="v_prediction")
    sd = tiny_stable_diffusion(seed=1, dtype=torch.float64, scheduler=scheduler)
    cfg = EDICTConfig(steps=10, strength=1.0, steps_offset=None)  # the model's 901..1 grid
    assert pipeline.active_timesteps(sd, cfg).tolist()[:2] == [901, 801]
    x, y = pipeline.reconstruct(sd, latents64, "a cat", cfg)
    assert max(rel(x, latents64), rel(y, latents64)) < 1e-10


def test_output_selection():
    cfg = EDICTConfig()
    x, y = torch.zeros(1), torch.ones(1)
    assert pipeline.select_output(x, y, cfg) is x
    assert pipeline.select_output(x, y, dataclasses.replace(cfg, output="y")) is y
    assert float(pipeline.select_output(x, y, dataclasses.replace(cfg, output="mean"))) == 0.5


@pytest.mark.parametrize(
    "field,value",
    [("steps", 0), ("strength", 0.0), ("strength", 1.5), ("p", 0.0), ("p", 1.2),
     ("guidance", float("nan")), ("dtype", "bfloat8"), ("method", "sdedit"),
     ("order_key", "x"), ("posterior", "mode"), ("output", "z"), ("steps_offset", -1)],
)  # fmt: skip
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match="EDICT config needs"):
        EDICTConfig(**{field: value})
    with pytest.raises(ValueError, match="int\\(steps \\* strength\\)"):
        EDICTConfig(steps=10, strength=0.05)


def test_ddim_baseline_by_hand(sd64, latents64):
    """grid [100, 0], G = 2: inversion x_100 = (z - b eps(z, 100)) / a; regeneration a x + b eps."""
    cfg = EDICTConfig(steps=10, strength=0.2, guidance=2.0, method="ddim")
    abar = sd64.schedule.alphas_cumprod
    eps = pipeline.noise_predictor(sd64, "a cat", 1, cfg)
    a = np.sqrt(abar[0] / abar[100])
    b = np.sqrt(1 - abar[0]) - np.sqrt(abar[0] * (1 - abar[100]) / abar[100])
    with torch.no_grad():
        noisy = (latents64 - b * eps(latents64, 100)) / a  # the t = 0 step is the identity
        clean = a * noisy + b * eps(noisy, 100)
    x, y = pipeline.invert(sd64, latents64, "a cat", cfg)
    torch.testing.assert_close(x, noisy, rtol=1e-12, atol=1e-12)
    assert y is x
    x, _ = pipeline.denoise(sd64, noisy, noisy, "a cat", cfg)
    torch.testing.assert_close(x, clean, rtol=1e-12, atol=1e-12)
