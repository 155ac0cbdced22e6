"""The coupled step, its inverse, mixing and leapfrog order against a float64 numpy rewrite."""

import numpy as np
import pytest
import torch
from edict_helpers import ToyEps, official_active_grid, sd_alphas_cumprod

from diffrepro.edict.coupled import (
    DDIMStep,
    ddim_steps,
    denoise_step,
    edict_denoise,
    edict_invert,
    invert_step,
    mix,
    unmix,
)

ABAR = sd_alphas_cumprod()
FINAL = ABAR[0]  # set_alpha_to_one=False


def coefficients(t, t_prev_abar):
    a = np.sqrt(t_prev_abar / ABAR[t])
    b = np.sqrt(1 - t_prev_abar) - np.sqrt(t_prev_abar * (1 - ABAR[t]) / ABAR[t])
    return a, b


def reference_denoise(eps, x, y, grid, p, leapfrog=True):
    """Spec §3.2 + §3.4, written independently in numpy."""
    for i, t in enumerate(grid):
        a, b = coefficients(t, ABAR[grid[i + 1]] if i + 1 < len(grid) else FINAL)
        if not leapfrog or i % 2 == 0:
            x = a * x + b * eps(y, t)
            y = a * y + b * eps(x, t)
        else:
            y = a * y + b * eps(x, t)
            x = a * x + b * eps(y, t)
        x = p * x + (1 - p) * y
        y = p * y + (1 - p) * x
    return x, y


def reference_invert(eps, x, y, grid, p, leapfrog=True):
    """Spec §3.3 (Eq. 15) with the order of the mirrored denoising index."""
    n = len(grid)
    for j in range(n):
        i = n - 1 - j
        t = grid[i]
        a, b = coefficients(t, ABAR[grid[i + 1]] if i + 1 < n else FINAL)
        y = (y - (1 - p) * x) / p
        x = (x - (1 - p) * y) / p
        if not leapfrog or i % 2 == 0:
            y = (y - b * eps(x, t)) / a
            x = (x - b * eps(y, t)) / a
        else:
            x = (x - b * eps(y, t)) / a
            y = (y - b * eps(x, t)) / a
    return x, y


def start(seed=0, dim=16, batch=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, dim)), rng.normal(size=(batch, dim))


@pytest.mark.parametrize("steps,strength", [(50, 0.8), (50, 0.7), (10, 1.0), (7, 0.6)])
@pytest.mark.parametrize("leapfrog", [True, False])
def test_denoise_and_invert_match_the_numpy_reference(steps, strength, leapfrog):
    toy = ToyEps()
    grid = official_active_grid(steps, strength)
    x, y = start()
    chain = ddim_steps(ABAR, grid, FINAL)
    assert [s.timestep for s in chain] == grid
    ours = edict_denoise(
        toy, torch.from_numpy(x), torch.from_numpy(y), chain, p=0.93, leapfrog=leapfrog
    )
    ref = reference_denoise(toy.numpy, x, y, grid, 0.93, leapfrog)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12, atol=1e-12)
    ours = edict_invert(
        toy, torch.from_numpy(x), torch.from_numpy(y), chain, p=0.93, leapfrog=leapfrog
    )
    ref = reference_invert(toy.numpy, x, y, grid, 0.93, leapfrog)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12, atol=1e-12)


def test_ddim_step_coefficients_and_last_identity_step():
    chain = ddim_steps(ABAR, [780, 760, 20, 0], FINAL)
    a, b = coefficients(780, ABAR[760])
    assert chain[0] == DDIMStep(780, pytest.approx(a, rel=1e-14), pytest.approx(b, rel=1e-14))
    assert chain[2].timestep == 20 and chain[2].a == pytest.approx(np.sqrt(ABAR[0] / ABAR[20]))
    assert (chain[-1].a, chain[-1].b) == (1.0, 0.0)  # t = 0 -> final alpha-bar = abar_0
    assert chain[0].b < 0  # moving towards the data removes noise


def test_mix_unmix_algebra_and_eigenvalues():
    x, y = (torch.from_numpy(v) for v in start(1))
    for p in (0.5, 0.93, 1.0):
        mx, my = mix(x, y, p)
        torch.testing.assert_close(mx, p * x + (1 - p) * y, rtol=0, atol=1e-15)
        torch.testing.assert_close(my, p * y + (1 - p) * mx, rtol=0, atol=1e-15)
        ux, uy = unmix(mx, my, p)
        torch.testing.assert_close(ux, x, rtol=0, atol=1e-14)
        torch.testing.assert_close(uy, y, rtol=0, atol=1e-14)
        # the 2x2 map on (x, y): columns are the images of (1, 0) and (0, 1)
        m = np.array([[*mix(torch.tensor(1.0), torch.tensor(0.0), p)],
                      [*mix(torch.tensor(0.0), torch.tensor(1.0), p)]], dtype=float).T  # fmt: skip
        np.testing.assert_allclose(m, [[p, 1 - p], [p * (1 - p), (1 - p) ** 2 + p]], atol=1e-15)
        np.testing.assert_allclose(sorted(np.linalg.eigvals(m).real), sorted([1.0, p**2]))
        assert np.linalg.det(m) == pytest.approx(p**2)
    same = torch.ones(3)
    assert torch.equal(mix(same, same, 0.93)[1], same)  # x = y is the eigenvalue-1 mode


@pytest.mark.parametrize("x_goes_first", [True, False])
def test_one_step_inverse_is_exact_and_eps_sees_the_right_points(x_goes_first):
    toy = ToyEps()
    x, y = (torch.from_numpy(v) for v in start(2))
    step = ddim_steps(ABAR, [500, 480], FINAL)[0]
    nx, ny = denoise_step(toy, x, y, step, 0.93, x_goes_first)
    assert not torch.allclose(nx, ny)
    bx, by = invert_step(toy, nx, ny, step, 0.93, x_goes_first)
    torch.testing.assert_close(bx, x, rtol=0, atol=1e-13)
    torch.testing.assert_close(by, y, rtol=0, atol=1e-13)
    wx, wy = invert_step(toy, nx, ny, step, 0.93, not x_goes_first)  # the wrong order
    assert (wx - x).abs().max() > 1e-4


@pytest.mark.parametrize("active", [35, 40])
def test_round_trip_exact_for_odd_and_even_active_steps(active):
    toy = ToyEps(guidance=7.5)
    grid = official_active_grid(50, active / 50)
    assert len(grid) == active
    chain = ddim_steps(ABAR, grid, FINAL)
    z = torch.from_numpy(start(4)[0])
    noisy = edict_invert(toy, z, z.clone(), chain)
    x, y = edict_denoise(toy, *noisy, chain)
    assert float((x - z).norm() / z.norm()) < 1e-10
    assert float((y - z).norm() / z.norm()) < 1e-10
    # the diffusers community pipeline's order: right for an even count, wrong for an odd one
    noisy = edict_invert(toy, z, z.clone(), chain, order_key="loop")
    x, _ = edict_denoise(toy, *noisy, chain)
    error = float((x - z).norm() / z.norm())
    assert (error < 1e-10) if active % 2 == 0 else (error > 1e-4)


def test_p_equal_one_is_exact_and_x_y_stay_close_at_p_093():
    toy = ToyEps()
    chain = ddim_steps(ABAR, official_active_grid(50, 1.0), FINAL)
    z = torch.from_numpy(start(5)[0])
    for p in (1.0, 0.93):
        x, y = edict_denoise(toy, *edict_invert(toy, z, z.clone(), chain, p=p), chain, p=p)
        assert float((x - z).norm() / z.norm()) < 1e-10
    noise = torch.from_numpy(start(6)[0])
    x, y = edict_denoise(toy, noise, noise.clone(), chain, p=0.93)
    assert 0 < float((x - y).norm() / x.norm()) < 0.05


def test_call_count_is_two_eps_per_coupled_step():
    toy = ToyEps()
    chain = ddim_steps(ABAR, official_active_grid(50, 0.8), FINAL)
    z = torch.from_numpy(start(7)[0])
    edict_invert(toy, z, z.clone(), chain)
    assert toy.calls == 2 * 40
    with pytest.raises(ValueError, match="order_key"):
        edict_invert(toy, z, z, chain, order_key="nope")
