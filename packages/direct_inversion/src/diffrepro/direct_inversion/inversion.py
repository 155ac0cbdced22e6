"""Step 2 of Direct Inversion: deterministic DDIM inversion that stores every noise prediction.

The result is an :class:`InversionBuffer`: the inverted latent z_T, the list ``eps`` of the
N_inv inversion noise predictions in the order they were made (entry i = inversion step i,
from the clean end), the latents after each step, and the grid they belong to, so that editing
can check it replays the buffer on the matching grid (spec §6.5).

Two grids (spec §3.2, §9.2):

- ``consistent`` (default): :meth:`StableDiffusion.invert` on the editing grid of the model's
  scheduler (core ``invert_ddim``, recorded through its per-step callback). Inversion step i is
  the exact algebraic inverse of editing step N-1-i, so λ = 1 reconstructs z_0 exactly.
- ``official``: the loop of the official pipeline. For i = 0, Δ, …, 1000-Δ (Δ = 1000 / N_inv)
  the UNet is evaluated at timestep i on the current latent, treated as level ᾱ_i, and the latent
  moves to ᾱ_{i+Δ}, with ᾱ_{i+Δ} := ᾱ_i when i+Δ ≥ 999 (so the last step is an identity).
  Core ``invert_ddim`` evaluates the model at the level it *reaches*, and a clamped step has
  equal levels, so this loop is written out with core's pure DDIM step
  (``x0_eps_from_prediction`` + ``ddim_mean_variance``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.samplers import StepState, ddim_mean_variance, x0_eps_from_prediction

Model = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class InversionBuffer:
    """What inversion leaves for editing (see the module docstring)."""

    grid: str  # "consistent" or "official"
    z0: Tensor  # the clean latent that was inverted
    zT: Tensor  # the inverted latent (the editing starts here)
    eps: tuple[Tensor, ...]  # eps[i]: noise prediction of inversion step i (clean end first)
    latents: tuple[Tensor, ...]  # latents[i]: the latent after inversion step i
    timesteps: tuple[int, ...]  # timesteps[i]: the UNet timestep of inversion step i

    def __len__(self) -> int:
        return len(self.eps)

    @property
    def editing_grid(self) -> np.ndarray:
        """The descending editing grid whose step k this buffer's entry N-1-k mirrors."""
        if self.grid == "consistent":
            return np.asarray(self.timesteps[::-1], dtype=np.int64)
        return official_editing_grid(len(self))


def official_inversion_timesteps(num_steps: int) -> list[int]:
    """0, Δ, …, 1000-Δ with Δ = 1000 / N (the official code asserts that N divides 1000)."""
    if num_steps < 1 or 1000 % num_steps:
        raise ValueError(f"the official grid needs inv_steps dividing 1000, got {num_steps}")
    return list(range(0, 1000, 1000 // num_steps))


def official_editing_grid(num_steps: int) -> np.ndarray:
    """diffusers 0.3 ``set_timesteps(N, offset=1)``: 1000-Δ+1, …, Δ+1, 1 (descending)."""
    if num_steps < 1 or num_steps > 1000:
        raise ValueError(f"steps must lie in [1, 1000], got {num_steps}")
    return np.arange(0, 1000, 1000 // num_steps)[::-1] + 1


def invert(
    sd: StableDiffusion,
    z0: Tensor,
    num_steps: int,
    *,
    prompt: str = "",
    grid: str = "consistent",
    progress: bool = False,
) -> InversionBuffer:
    """DDIM-invert clean latents ``z0`` with ``prompt`` (a single conditional pass, no CFG)."""
    if grid == "consistent":
        return _invert_consistent(sd, z0, num_steps, prompt, progress)
    if grid == "official":
        context = sd.encode_prompt([prompt] * z0.shape[0])
        return invert_official(
            sd.denoiser(context),
            z0,
            sd.schedule.alphas_cumprod,
            num_steps,
            prediction=sd.scheduler.prediction,
        )
    raise ValueError(f"unknown grid {grid!r}; expected consistent or official")


def _invert_consistent(
    sd: StableDiffusion, z0: Tensor, num_steps: int, prompt: str, progress: bool
) -> InversionBuffer:
    states: list[StepState] = []

    def record(state: StepState) -> None:
        states.append(state)

    prompts = [prompt] * z0.shape[0]
    zT = sd.invert(z0, prompts, num_steps=num_steps, callback=record, progress=progress)
    return InversionBuffer(
        grid="consistent",
        z0=z0,
        zT=zT,
        eps=tuple(s.eps for s in states),
        latents=tuple(s.mean for s in states),
        timesteps=tuple(s.timestep for s in states),
    )


def invert_official(
    model: Model,
    z0: Tensor,
    alphas_cumprod: np.ndarray,
    num_steps: int,
    *,
    prediction: str = "eps",
) -> InversionBuffer:
    """The official inversion loop (module docstring) over a 1000-step schedule."""
    if len(alphas_cumprod) != 1000:
        raise ValueError(f"the official grid needs 1000 training steps, got {len(alphas_cumprod)}")
    timesteps = official_inversion_timesteps(num_steps)
    delta = 1000 // num_steps
    z, eps_list, latents = z0, [], []
    with torch.no_grad():
        for i in timesteps:
            a_t = float(alphas_cumprod[i])
            a_next = a_t if i + delta >= 999 else float(alphas_cumprod[i + delta])
            t = torch.full((z.shape[0],), i, dtype=torch.long, device=z.device)
            level = torch.tensor(a_t, dtype=torch.float64)
            x0, eps = x0_eps_from_prediction(model(z, t), z, level, prediction)
            x0, eps = x0.to(z.dtype), eps.to(z.dtype)
            z, _ = ddim_mean_variance(x0, eps, a_t, a_next)
            eps_list.append(eps)
            latents.append(z)
    return InversionBuffer(
        grid="official",
        z0=z0,
        zT=z,
        eps=tuple(eps_list),
        latents=tuple(latents),
        timesteps=tuple(timesteps),
    )
