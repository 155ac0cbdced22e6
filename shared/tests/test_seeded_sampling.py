"""core.seeded_sampling: per-seed DDIM with any model on a bundle's scheduler, and decoding."""

import dataclasses

import numpy as np
import torch

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.core.samplers import make_generators
from diffrepro.core.seeded_sampling import decode_clamped, sample_seeded

torch.set_num_threads(1)


def test_zero_eps_lands_on_the_float64_telescoped_scale():
    """With eps = 0 every DDIM step (eta 0) scales x by sqrt(abar_next / abar_t): the product is
    sqrt(final / abar(first grid step)), with the scheduler's final alpha (set_alpha_to_one)."""
    sd = tiny_stable_diffusion(seed=0)
    for to_one in (True, False):
        sd.scheduler = dataclasses.replace(sd.scheduler, set_alpha_to_one=to_one, clip_sample=False)
        calls = []

        def model(x, t, calls=calls):
            calls.append(int(t.reshape(-1)[0]))
            return torch.zeros_like(x)

        out = sample_seeded(sd, model, [3], height=32, width=32, num_steps=5)
        grid = sd.scheduler.grid(5)
        assert calls == [int(t) for t in grid]
        abar = np.asarray(sd.schedule.alphas_cumprod, dtype=np.float64)
        final = 1.0 if to_one else abar[0]
        x_t = sd.initial_latents(1, 32, 32, make_generators([3])).double()
        expected = x_t * np.sqrt(final / abar[int(grid[0])])
        torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)


def test_sample_k_depends_only_on_seed_k_and_given_latents_are_used():
    sd = tiny_stable_diffusion(seed=0)
    ctx = sd.encode_prompt("a cat")

    def model(x, t):
        return sd.unet(x, t, ctx.expand(len(x), -1, -1))

    both = sample_seeded(sd, model, [4, 5], height=32, width=32, num_steps=3)
    alone = sample_seeded(sd, model, [5], height=32, width=32, num_steps=3)
    torch.testing.assert_close(alone[0], both[1], atol=1e-5, rtol=0)
    assert not torch.allclose(both[0], both[1], atol=1e-3)
    start = torch.zeros(1, 4, 8, 8)
    a = sample_seeded(sd, model, [0], height=32, width=32, num_steps=3, latents=start)
    b = sample_seeded(sd, model, [9], height=32, width=32, num_steps=3, latents=start)
    assert torch.equal(a, b)  # eta 0: the seed only draws the starting noise


def test_ddim_eta_noise_comes_from_the_seed():
    sd = tiny_stable_diffusion(seed=0)

    def model(x, t):
        return torch.zeros_like(x)

    start = torch.zeros(1, 4, 8, 8)
    kw = dict(height=32, width=32, num_steps=3, ddim_eta=1.0, latents=start)
    a, b = sample_seeded(sd, model, [1], **kw), sample_seeded(sd, model, [1], **kw)
    c = sample_seeded(sd, model, [2], **kw)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_decode_clamped_is_float32_on_cpu_in_range():
    sd = tiny_stable_diffusion(seed=0)
    z = torch.randn(2, 4, 8, 8) * 50
    images = decode_clamped(sd, z)
    assert images.dtype == torch.float32 and images.device.type == "cpu"
    assert images.shape == (2, 3, 32, 32)
    assert images.min() >= -1 and images.max() <= 1
    with torch.no_grad():
        raw = sd.decode_latents(z)
    assert torch.equal(images, raw.clamp(-1, 1))
