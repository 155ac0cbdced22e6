"""Helpers shared by the EDICT tests: a numpy/torch toy noise model, SD alpha-bars, grids."""

import numpy as np
import torch


class ToyEps:
    """A float64 MLP noise model with CFG over two "prompt" vectors, in numpy and in torch.

    eps(z, t) = eps_u + G (eps_c - eps_u), eps_c(z, t) = tanh(z W1 + sin(t / 97) u + c) W2 + 0.3 z.
    """

    def __init__(self, dim: int = 16, guidance: float = 3.0, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w1 = rng.normal(size=(dim, dim)) / np.sqrt(dim)
        self.w2 = rng.normal(size=(dim, dim)) / np.sqrt(dim)
        self.u = rng.normal(size=dim)
        self.c, self.c0 = rng.normal(size=dim), rng.normal(size=dim)
        self.guidance = guidance
        self.calls = 0

    def numpy(self, z: np.ndarray, t: int) -> np.ndarray:
        def branch(c):
            return np.tanh(z @ self.w1 + np.sin(t / 97) * self.u + c) @ self.w2 + 0.3 * z

        e_u, e_c = branch(self.c0), branch(self.c)
        return e_u + self.guidance * (e_c - e_u)

    def __call__(self, z: torch.Tensor, t: int) -> torch.Tensor:
        self.calls += 1
        w1, w2 = torch.from_numpy(self.w1), torch.from_numpy(self.w2)
        u, c, c0 = (torch.from_numpy(v).to(z.dtype) for v in (self.u, self.c, self.c0))
        w1, w2 = w1.to(z.dtype), w2.to(z.dtype)

        def branch(cv):
            return torch.tanh(z @ w1 + float(np.sin(t / 97)) * u + cv) @ w2 + 0.3 * z

        e_u, e_c = branch(c0), branch(c)
        return e_u + self.guidance * (e_c - e_u)


def sd_alphas_cumprod() -> np.ndarray:
    """SD 1.x's scaled-linear alpha-bars, computed here in float64 numpy."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    return np.cumprod(1.0 - betas)


def official_active_grid(steps: int, strength: float) -> list[int]:
    """EDICT's grid: set_timesteps(S) without offset (980..0 for S=50), then grid[t_limit:]."""
    grid = list(range(0, 1000, 1000 // steps))[::-1]
    t_limit = steps - int(steps * strength)
    return grid[t_limit:]
