"""The invariants of spec §6 on the tiny float64 stack, and golden values from reference.py."""

import dataclasses

import numpy as np
import pytest
import torch

from diffrepro.direct_inversion.config import PRESETS, DirectInversionConfig
from diffrepro.direct_inversion.editing import direct_inversion, edit_latents
from diffrepro.direct_inversion.inversion import (
    invert,
    official_editing_grid,
    official_inversion_timesteps,
)

from . import reference as ref

N = 5
CFG = dataclasses.replace(PRESETS["tiny"], steps=N, inv_steps=N)


def cfg(**kw) -> DirectInversionConfig:
    return dataclasses.replace(CFG, **kw)


def maxdiff(a, b) -> float:
    return float((a - b).abs().max())


def rel(a, b) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def buffers(sd64, z0):
    return {grid: invert(sd64, z0, N, grid=grid) for grid in ("consistent", "official")}


@pytest.mark.parametrize("prompt", ["a red dog", "the painting of a horse", ""])
@pytest.mark.parametrize("w", [0.0, 1.0, 3.0, 7.5])
def test_lambda_one_reconstructs_exactly_for_any_prompt_and_guidance(sd64, z0, buffers, prompt, w):
    out = edit_latents(sd64, buffers["consistent"], prompt, cfg(lam=1.0, guidance=w))
    assert rel(out, z0) < 1e-10


def test_lambda_one_is_exact_at_the_paper_step_count(sd64, z0):
    c = cfg(steps=100, inv_steps=100, lam=1.0, guidance=3.0)
    buffer = invert(sd64, z0[:1], 100)
    assert rel(edit_latents(sd64, buffer, "a red dog", c), z0[:1]) < 1e-10


@pytest.mark.parametrize("w", [1.0, 3.0])
def test_lambda_zero_is_ddim_inversion_then_cfg_sampling(sd64, z0, buffers, w):
    zT = sd64.invert(z0, ["", ""], num_steps=N)
    baseline = sd64.sample(["a red dog"] * 2, latents=zT, num_steps=N, guidance_scale=w)
    for c in (cfg(lam=0.0, guidance=w), cfg(lam=0.7, inject_steps=0, guidance=w)):
        out = edit_latents(sd64, buffers["consistent"], "a red dog", c)
        assert float((out - baseline).abs().max()) < 1e-12


def test_distance_to_the_source_orders_the_endpoints(sd64, z0, buffers):
    dist = {
        lam: rel(edit_latents(sd64, buffers["consistent"], "a red dog", cfg(lam=lam)), z0)
        for lam in (1.0, 0.5, 0.0)
    }
    assert dist[1.0] < dist[0.5] < dist[0.0]


@pytest.mark.parametrize(
    "knobs",
    [
        {"grid": "consistent", "lam": 0.5, "guidance": 3.0},
        {"grid": "consistent", "lam": 0.7, "guidance": 5.0, "inject_steps": 2},
        {"grid": "consistent", "lam": 0.3, "guidance": 2.0, "inject_steps": 1},
        {"grid": "official", "lam": 0.5, "guidance": 3.0},
        {"grid": "official", "lam": 1.0, "guidance": 3.0},
        {"grid": "official", "lam": 0.6, "guidance": 4.0, "inject_steps": 3},
        {"grid": "consistent", "lam": 0.3, "guidance": 3.0, "blend_with": "latent"},
    ],
)
def test_matches_the_numpy_reference(sd64, z0, buffers, knobs):
    c = cfg(**knobs)
    eps, abar, x = ref.make_eps(sd64), sd64.schedule.alphas_cumprod, z0.numpy()
    invert_ref = ref.invert_official if c.grid == "official" else ref.invert_consistent
    zT, noises = invert_ref(eps, x, abar, N)
    buffer = buffers[c.grid]
    np.testing.assert_allclose(buffer.zT.numpy(), zT, rtol=0, atol=1e-10)
    for ours, theirs in zip(buffer.eps, noises, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-12)
    expected = ref.edit(
        eps, zT, noises, abar, N, "a red dog", c.guidance, c.lam, c.num_blended, c.blend_with
    )
    out = edit_latents(sd64, buffer, "a red dog", c)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-10)


def test_k_equal_n_blends_every_step_and_only_the_first_k_steps_are_blended(sd64, buffers):
    buffer = buffers["consistent"]
    outs = [edit_latents(sd64, buffer, "a cat", cfg(inject_steps=k)) for k in range(N + 1)]
    assert torch.equal(outs[N], edit_latents(sd64, buffer, "a cat", cfg(inject_steps=None)))
    assert torch.equal(outs[0], edit_latents(sd64, buffer, "a cat", cfg(lam=0.0)))
    for a, b in zip(outs, outs[1:]):
        assert float((a - b).abs().max()) > 1e-6  # every extra blended step changes the result


def test_buffer_layout_and_consistent_grid(sd64, z0, buffers):
    buffer = buffers["consistent"]
    grid = sd64.scheduler.grid(N)  # 801, 601, ..., 1 for the SD 1.5 scheduler
    assert len(buffer) == len(buffer.latents) == N
    assert list(buffer.timesteps) == grid[::-1].tolist()
    assert buffer.editing_grid.tolist() == grid.tolist()
    assert torch.equal(buffer.latents[-1], buffer.zT) and torch.equal(buffer.z0, z0)


def test_official_grids_as_coded():
    assert official_inversion_timesteps(10) == list(range(0, 1000, 100))
    assert official_editing_grid(100).tolist() == list(range(991, 0, -10))
    assert official_editing_grid(10).tolist() == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    with pytest.raises(ValueError, match="dividing 1000"):
        official_inversion_timesteps(30)


def test_official_last_inversion_step_is_an_identity(buffers):
    buffer = buffers["official"]
    assert buffer.timesteps == tuple(range(0, 1000, 1000 // N))
    assert maxdiff(buffer.latents[-1], buffer.latents[-2]) < 1e-12


def test_official_mode_reconstruction_error_is_small_but_not_zero(sd64, z0, buffers):
    """The off-by-one grids: λ = 1 no longer replays the inversion (spec §6.6)."""
    buffer = buffers["official"]
    official = rel(edit_latents(sd64, buffer, "a cat", cfg(grid="official", lam=1)), z0)
    free = rel(edit_latents(sd64, buffer, "a cat", cfg(grid="official", lam=0)), z0)
    assert 1e-3 < official < free
    fine = cfg(grid="official", lam=1.0, steps=20, inv_steps=20)
    finer = rel(edit_latents(sd64, invert(sd64, z0, 20, grid="official"), "a cat", fine), z0)
    assert 1e-3 < finer < official  # shrinks as the grid gets finer


def test_lambda_one_official_mode_ignores_the_prompt(sd64, buffers):
    c = cfg(grid="official", lam=1.0)
    a = edit_latents(sd64, buffers["official"], "a cat", c)
    b = edit_latents(sd64, buffers["official"], "a red horse", c)
    assert float((a - b).abs().max()) < 1e-12


@pytest.mark.parametrize(
    "edit_cfg, buffer_grid, message",
    [
        ({"steps": N - 1, "inv_steps": N - 1}, "consistent", "steps == inv_steps"),
        ({"steps": N + 5, "inv_steps": N + 5}, "consistent", "steps == inv_steps"),
        ({"grid": "official"}, "consistent", "consistent grid"),
        ({}, "official", "official grid"),
    ],
)
def test_buffer_indexing_refuses_a_mismatched_grid(sd64, buffers, edit_cfg, buffer_grid, message):
    with pytest.raises(ValueError, match=message):
        edit_latents(sd64, buffers[buffer_grid], "a cat", cfg(**edit_cfg))


def test_buffer_from_another_scheduler_grid_is_refused(sd64, z0):
    other = dataclasses.replace(sd64.scheduler, steps_offset=0)
    from diffrepro.core.models.stable_diffusion import StableDiffusion

    shifted = StableDiffusion(sd64.unet, sd64.vae, sd64.text_encoder, sd64.tokenizer, other)
    buffer = invert(shifted, z0, N)
    with pytest.raises(ValueError, match="consistent grid"):
        edit_latents(sd64, buffer, "a cat", CFG)


def test_prompt_sensitivity(sd64, z0, buffers):
    buffer = buffers["consistent"]
    edited = [edit_latents(sd64, buffer, p, cfg(lam=0.5, guidance=3.0)) for p in ("a cat", "a dog")]
    assert float((edited[0] - edited[1]).abs().max()) > 1e-3
    exact = [edit_latents(sd64, buffer, p, cfg(lam=1.0, guidance=3.0)) for p in ("a cat", "a dog")]
    assert float((exact[0] - exact[1]).abs().max()) < 1e-12


def test_inversion_prompt_is_used(sd64, z0):
    a = invert(sd64, z0, N)
    b = invert(sd64, z0, N, prompt="a photo of the cat")
    assert float((a.zT - b.zT).abs().max()) > 1e-6
    exact = edit_latents(sd64, b, "a dog", cfg(lam=1.0))
    assert rel(exact, z0) < 1e-10  # the replay is exact whatever the inversion prompt


def test_eta_noise_is_seeded_and_without_direct_injection_editing_starts_from_noise(sd64, buffers):
    buffer = buffers["consistent"]
    c = cfg(eta=0.5)
    a, b = (
        edit_latents(sd64, buffer, "a cat", c, generator=torch.Generator().manual_seed(1))
        for _ in range(2)
    )
    other = edit_latents(sd64, buffer, "a cat", c, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and float((a - other).abs().max()) > 1e-6
    c = cfg(direct_injection=False, lam=0.0)
    out = edit_latents(sd64, buffer, "a cat", c, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(buffer.zT.shape, generator=g, dtype=torch.float64)
    expected = sd64.sample(["a cat"] * 2, latents=noise, num_steps=N, guidance_scale=3.0)
    assert float((out - expected).abs().max()) < 1e-12


def test_direct_inversion_on_images_reconstructs_the_vae_latent(sd64):
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    c = cfg(lam=1.0)
    result = direct_inversion(
        sd64, images.double(), "a red dog", c, generator=torch.Generator().manual_seed(0)
    )
    assert rel(result.latents, result.buffer.z0) < 1e-10
    assert maxdiff(result.images, sd64.decode_latents(result.buffer.z0)) < 1e-8
    again = direct_inversion(
        sd64, images.double(), "a red dog", c, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(again.buffer.z0, result.buffer.z0)  # the posterior sample is seeded
    mean = direct_inversion(sd64, images.double(), "a red dog", cfg(lam=1.0, vae_sample=False))
    assert maxdiff(mean.buffer.z0, sd64.encode_images(images.double())) == 0


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"lam": 1.5}, "lam"),
        ({"lam": -0.1}, "lam"),
        ({"inject_steps": N + 1}, "inject_steps"),
        ({"inject_steps": -1}, "inject_steps"),
        ({"steps": 0, "inv_steps": 0}, "steps"),
        ({"inv_steps": N + 1}, "steps == inv_steps"),
        ({"grid": "official", "steps": 3, "inv_steps": 3}, "dividing 1000"),
        ({"grid": "exact"}, "grid"),
        ({"blend_with": "x0"}, "blend_with"),
        ({"eta": -1.0}, "eta"),
        ({"guidance": float("nan")}, "guidance"),
    ],
)
def test_config_refuses_bad_values(knobs, message):
    with pytest.raises(ValueError, match=message):
        cfg(**knobs)


@pytest.mark.parametrize("n", [1000, 500, 8])
def test_official_inversion_matches_the_reference_on_every_grid(sd64, n):
    """A cheap analytic eps-model, so the 1000-step grid (where i + Δ = 999 occurs) is tested."""
    from diffrepro.direct_inversion.inversion import invert_official

    def model(x, t):
        return 0.3 * x + torch.sin(t.to(x) / 37.0)[:, None, None, None]

    def eps(x, t, prompt):
        return 0.3 * x + np.sin(t / 37.0)

    abar = sd64.schedule.alphas_cumprod
    x = torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    buffer = invert_official(model, x, abar, n)
    zT, noises = ref.invert_official(eps, x.numpy(), abar, n)
    np.testing.assert_allclose(buffer.zT.numpy(), zT, rtol=1e-12, atol=1e-12)
    assert len(buffer) == n == len(noises)
    assert buffer.timesteps == tuple(range(0, 1000, 1000 // n))


def test_clipped_x0_schedulers_clip_the_blended_step_too(sd64, z0):
    from diffrepro.core.models.stable_diffusion import StableDiffusion

    clipped = dataclasses.replace(sd64.scheduler, clip_sample=True, clip_sample_range=0.5)
    sd = StableDiffusion(sd64.unet, sd64.vae, sd64.text_encoder, sd64.tokenizer, clipped)
    buffer = invert(sd, z0, N)
    zT = buffer.zT
    baseline = sd.sample(["a dog"] * 2, latents=zT, num_steps=N, guidance_scale=3.0)
    out = edit_latents(sd, buffer, "a dog", cfg(lam=0.0))
    assert maxdiff(out, baseline) < 1e-12
    unclipped = edit_latents(sd64, invert(sd64, z0, N), "a dog", cfg(lam=0.0))
    assert maxdiff(out, unclipped) > 1e-3


def test_one_prompt_per_inverted_image(sd64, buffers):
    buffer = buffers["consistent"]
    pair = edit_latents(sd64, buffer, ["a cat", "a dog"], cfg())
    alone = edit_latents(sd64, buffer, "a dog", cfg())
    assert maxdiff(pair[1], alone[1]) < 1e-12 and maxdiff(pair[0], alone[0]) > 1e-6
    with pytest.raises(ValueError, match="3 prompts for 2"):
        edit_latents(sd64, buffer, ["a", "b", "c"], cfg())
