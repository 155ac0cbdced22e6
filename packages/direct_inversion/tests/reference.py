"""An independent float64 NumPy rewrite of Direct Inversion, from the spec's equations (§3.2-3.3).

Only the network is shared with the package: ``eps(x, t, prompt)`` evaluates the tiny UNet on a
NumPy array. The grids are computed here from their definitions (diffusers 0.3 style: a DDIM
step goes from t to t - T // N), not from the package's helpers.
"""

from __future__ import annotations

import numpy as np
import torch


def make_eps(sd):
    """``eps(x, t, prompt) -> ndarray``: the bundle's UNet on float64 NumPy inputs."""
    cache = {}

    def eps(x: np.ndarray, t: int, prompt: str) -> np.ndarray:
        if prompt not in cache:
            cache[prompt] = sd.encode_prompt([prompt] * x.shape[0])
        ts = torch.full((x.shape[0],), t, dtype=torch.long)
        with torch.no_grad():
            return sd.unet(torch.from_numpy(x), ts, cache[prompt]).numpy()

    return eps


def ddim(x, e, a_from, a_to):
    x0 = (x - np.sqrt(1 - a_from) * e) / np.sqrt(a_from)
    return np.sqrt(a_to) * x0 + np.sqrt(1 - a_to) * e


def invert_consistent(eps, z0, abar, n, prompt=""):
    """SD's leading grid with offset 1; x_0 sits at alpha-bar_0 (set_alpha_to_one=False)."""
    ts = [k * (1000 // n) + 1 for k in range(n)]
    z, a_from, noises = z0, abar[0], []
    for t in ts:
        e = eps(z, t, prompt)
        z = ddim(z, e, a_from, abar[t])
        a_from = abar[t]
        noises.append(e)
    return z, noises


def invert_official(eps, z0, abar, n, prompt=""):
    delta = 1000 // n
    z, noises = z0, []
    for i in range(0, 1000, delta):
        a_t = abar[i]
        a_next = a_t if i + delta >= 999 else abar[i + delta]
        e = eps(z, i, prompt)
        z = ddim(z, e, a_t, a_next)
        noises.append(e)
    return z, noises


def edit(eps, zT, noises, abar, n, prompt, w, lam, k_blend, blend_with="eps"):
    """Offset-1 leading grid, prev = t - T // N, last step to alpha-bar_0."""
    delta = 1000 // n
    z = zT
    for k, t in enumerate(range(1000 - delta + 1, 0, -delta)):
        e_u, e_c = eps(z, t, ""), eps(z, t, prompt)
        e = e_u + w * (e_c - e_u)
        if k < k_blend:
            target = noises[n - 1 - k] if blend_with == "eps" else zT
            e = (1 - lam) * e + lam * target
        prev = t - delta
        z = ddim(z, e, abar[t], abar[prev] if prev >= 0 else abar[0])
    return z
