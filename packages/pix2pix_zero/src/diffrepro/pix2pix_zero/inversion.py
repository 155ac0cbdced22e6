"""Regularised DDIM inversion (spec §3.2–3.3) with an explicit grid convention.

Grid modes, for ``N`` steps of a "leading" SD grid ``t_k = offset + k·T/N`` (``k = 0..N-1``):

- ``"full"`` (diffusers' ``DDIMInverseScheduler``, and the core ``invert_ddim``): N UNet calls;
  the step at ``t_k`` goes from ᾱ(t_{k-1}) (ᾱ₀ or 1 at k = 0, per ``set_alpha_to_one``) to ᾱ(t_k),
  so the result sits exactly where the editing sampler starts.
- ``"official"`` (the authors' ``DDIMInversion``: ``timesteps.flip(0)[1:-1]`` and their
  inverse scheduler): N − 2 UNet calls at ``t_1 .. t_{N-2}``; the step at ``t`` goes from
  ᾱ(t − 1) to ᾱ(t − 1 + T/N). The clean latent is treated as lying at ᾱ(T/N) and the result at
  ᾱ(t_{N-1} − 1), one timestep below where editing starts.

The regulariser acts on the model output (ε implied through ᾱ at the model's timestep, as
diffusers' ``get_epsilon``), before the output is used for the step. With the regulariser off the
``"full"`` mode equals ``diffrepro.core.samplers.invert_ddim`` bitwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.progress import track
from diffrepro.core.samplers import cfg_model, ddim_mean_variance, x0_eps_from_prediction

from .regularizer import RegularizerConfig, regularize_noise

GRID_MODES = ("official", "full")
Model = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class InversionStep:
    """One inversion step: the UNet's timestep and the alpha-bars left and reached."""

    timestep: int
    alpha_from: float
    alpha_to: float


@dataclass(frozen=True)
class InversionConfig:
    num_steps: int = 50
    grid: str = "official"
    regularize: bool = True
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    guidance_scale: float = 1.0  # inversion CFG (1: none, the official choice)

    def __post_init__(self) -> None:
        if self.grid not in GRID_MODES:
            raise ValueError(f"inversion grid must be one of {GRID_MODES}, got {self.grid!r}")
        if self.num_steps < (3 if self.grid == "official" else 1):
            raise ValueError(
                f"inversion num_steps must be >= 3 for the official grid and >= 1 otherwise, "
                f"got {self.num_steps}"
            )


def inversion_steps(sd: StableDiffusion, num_steps: int, mode: str) -> list[InversionStep]:
    """The steps of an inversion over ``sd``'s DDIM grid of ``num_steps`` (module docstring)."""
    if mode not in GRID_MODES:
        raise ValueError(f"inversion grid must be one of {GRID_MODES}, got {mode!r}")
    abar = sd.schedule.alphas_cumprod
    ascending = [int(t) for t in sd.scheduler.grid(num_steps)[::-1]]
    if mode == "full":
        start = sd.scheduler.final_alpha_cumprod(sd.schedule)
        froms = [start] + [float(abar[t]) for t in ascending[:-1]]
        return [InversionStep(t, a, float(abar[t])) for t, a in zip(ascending, froms)]
    if sd.scheduler.timestep_spacing != "leading":
        raise ValueError("the official inversion grid needs a 'leading' timestep spacing")
    ratio = sd.scheduler.num_train_timesteps // num_steps
    return [
        InversionStep(t, float(abar[t - 1]), float(abar[t - 1 + ratio])) for t in ascending[1:-1]
    ]


def regularized_invert(
    model: Model,
    z0: Tensor,
    steps: list[InversionStep],
    *,
    prediction: str = "eps",
    regularizer: RegularizerConfig | None = None,
    alphas_cumprod=None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """DDIM inversion of ``z0`` over ``steps``; each output regularised when ``regularizer``.

    ``alphas_cumprod`` (the schedule's) converts non-ε outputs to ε for the regulariser.
    """
    x = z0
    with torch.no_grad():
        for step in track(steps, disable=not progress, desc="invert"):
            t = torch.full((x.shape[0],), step.timestep, device=x.device, dtype=torch.long)
            output = model(x, t)
            if regularizer is not None:
                output = regularize_noise(
                    output,
                    regularizer,
                    to_eps=_to_eps(x, step.timestep, prediction, alphas_cumprod),
                    generator=generator,
                )
            level = torch.tensor(step.alpha_from, dtype=torch.float64)
            x0_hat, eps = x0_eps_from_prediction(output, x, level, prediction)
            x0_hat, eps = x0_hat.to(x.dtype), eps.to(x.dtype)
            x, _ = ddim_mean_variance(x0_hat, eps, step.alpha_from, step.alpha_to, 0.0)
    return x


def _to_eps(x: Tensor, timestep: int, prediction: str, alphas_cumprod) -> Callable:
    if prediction == "eps":
        return lambda out: out
    level = torch.tensor(float(alphas_cumprod[timestep]), dtype=torch.float64)
    return lambda out: x0_eps_from_prediction(out, x, level, prediction)[1].to(out.dtype)


def invert(
    sd: StableDiffusion,
    z0: Tensor,
    cond: Tensor,
    cfg: InversionConfig,
    *,
    uncond: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """Invert clean latents ``z0`` conditioned on ``cond`` (CLIP states); returns x_T."""
    if cfg.guidance_scale == 1.0:
        model = sd.denoiser(cond)
    else:
        if uncond is None:
            raise ValueError("inversion with guidance_scale != 1 needs an unconditional context")
        model = cfg_model(sd.unet, cond, uncond, cfg.guidance_scale)
    return regularized_invert(
        model,
        z0,
        inversion_steps(sd, cfg.num_steps, cfg.grid),
        prediction=sd.scheduler.prediction,
        regularizer=cfg.regularizer if cfg.regularize else None,
        alphas_cumprod=sd.schedule.alphas_cumprod,
        generator=generator,
        progress=progress,
    )
