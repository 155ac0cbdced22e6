"""Samplers: small functions over a model callable and a ``schedules.Schedule``.

Model contract: ``model(x, t) -> Tensor`` where ``t`` is a LongTensor of shape (B,) holding the
ORIGINAL model timesteps (``schedule.timesteps[index]``, so a respaced schedule still feeds the
1000-step timesteps). The output is the raw network output: the prediction named by
``prediction`` ("eps", "x0" or "v"); with ``variance="learned_range"`` or ``"learned"`` it has twice
the channels of x (first half the prediction, second half the variance values, guided-diffusion
layout). Other conditioning is bound with a closure, e.g. ``lambda x, t: unet(x, t, ctx)``.

Entry points (all return the final tensor; ``x`` is the starting tensor, e.g. x_T):

- ``sample_ddpm(model, x, schedule, *, prediction="eps", variance="fixed_small", clip_x0=None,
  start_index=None, generator=None, callback=None, progress=False, enable_grad=False)``:
  ancestral sampling over every index of ``schedule`` (respace it to use fewer steps), from
  ``start_index`` (default the last) down to 0; no noise is added at index 0.
- ``sample_ddim(model, x, schedule, *, timesteps=None, eta=0.0, final_alpha_cumprod=1.0,
  prediction="eps", variance="fixed_small", clip_x0=None, eps_from_clipped_x0=False,
  generator=None, callback=None, progress=False, enable_grad=False)``: DDIM over ``timesteps``
  (DESCENDING indices into ``schedule``; default all of them). Step k goes from
  ``timesteps[k]`` to ``timesteps[k+1]``; the last step goes to ``final_alpha_cumprod``.
  Deterministic at eta = 0. Stable Diffusion's grid (steps_offset=1, set_alpha_to_one=False)::

      sched = Schedule.named("scaled_linear", 1000)
      grid = spaced_timesteps(1000, 50, "leading", steps_offset=1)          # 981, ..., 1
      sample_ddim(model, x, sched, timesteps=grid, final_alpha_cumprod=sched.alphas_cumprod[0])

  A guided-diffusion respaced chain: ``sample_ddim(model, x, sched.respace(space_timesteps(1000,
  "ddim50")))``. Note: diffusers' DDIM steps to ``t - T // N``; that is the next grid entry for
  "leading" spacing and, when N divides T, for "trailing" (never for "linspace", whose stride is
  (T - 1) / (N - 1)). Likewise diffusers' DDPM adds noise at its last step when the grid does
  not end at timestep 0 ("trailing"); ``sample_ddpm`` adds none at index 0, as guided-diffusion.
- ``invert_ddim(model, x0, schedule, *, timesteps=None, final_alpha_cumprod=1.0, ...)``: the
  deterministic DDIM map run backwards over the same grid (ascending), with the usual
  approximation eps(x_s, t) ~ eps(x_t, t): the model is evaluated at the target timestep on the
  current (less noisy) sample, as diffusers' DDIMInverseScheduler does. Returns x_T.
- ``ddim_mean_variance(x0, eps, alpha_bar, alpha_bar_prev, eta=0.0) -> (mean, variance)``: the pure
  DDIM step, ``x_prev = mean + sqrt(variance) * noise``.
- ``ddim_affine(alpha_bar, alpha_bar_prev) -> (a, b)``: the deterministic DDIM step as the affine
  map ``x_prev = a x + b eps`` (exactly invertible for a given eps; EDICT's coupled steps).
- ``cfg_model(model, cond, uncond, scale, *, rescale=0.0, guided_channels=None, batched=True)``:
  classifier-free guidance as a model wrapper; ``model(x, t, c)`` takes a conditioning ``c``
  (a tensor, or a dict / tuple of tensors, batched along dim 0).
- ``per_sample_noise(shape, generators, device, dtype)`` and ``make_generators(seeds, device)``:
  seeding where sample k depends only on generator k (EDM's pattern), whatever the batch size.

``generator`` everywhere is None (global RNG), one ``torch.Generator``, or a list of them (one per
sample: per-sample seeding). ``clip_x0`` clamps the predicted x0 to [-clip_x0, clip_x0] (ADM's
clip_denoised is ``clip_x0=1.0``; diffusers' ``clip_sample``). In DDIM the eps used for the step is
the model's (diffusers' default); ``eps_from_clipped_x0=True`` recomputes it from the clipped x0
(ADM's ddim_sample, diffusers' use_clipped_model_output).

Callback: ``callback(state: StepState) -> StepState | None`` runs once per step after the mean and
variance are computed and before the noise is added. The sampler continues with the RETURNED
state's ``mean``, ``variance`` and ``noise``: ``x_next = mean + sqrt(variance) * noise`` (noise
None = deterministic). ``x``, ``model_output``, ``eps`` and ``x0`` are there to read. To replace the
prediction, recompute the mean from it, e.g. for DDPM
``schedule.posterior_mean_variance(new_x0, state.x, state.t_index)[0]`` and for DDIM
``ddim_mean_variance(new_x0, new_eps, state.alpha_bar, state.alpha_bar_prev, eta)``; use
``dataclasses.replace(state, mean=...)``. Recipes::

    def guidance(state):                      # ADIR / DPS style: shift the DDPM posterior mean
        grad = data_term_gradient(state.x0)   # any tensor shaped like x
        return dataclasses.replace(state, mean=state.mean - state.variance * grad)

    def paste_known(state):                   # RePaint style: force known pixels of x_next
        known = sched.q_sample(y, max(state.t_index - 1, 0), noise_y)   # any level you choose
        return dataclasses.replace(state, mean=torch.where(mask, known, state.mean),
                                   variance=torch.where(mask, 0, state.variance))

Own loops: the pieces are public and pure: ``split_output``, ``x0_eps_from_prediction``,
``schedule.posterior_mean_variance``, ``schedule.model_variance``, ``ddim_mean_variance`` and
``per_sample_noise``.

Grad mode: the samplers run under ``torch.no_grad()`` unless ``enable_grad=True`` (then the caller's
grad mode is kept, e.g. for guidance that differentiates through the model; detach what you keep).
Float64 inputs (and a float64 model) stay float64 end to end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from diffrepro.core.progress import track
from diffrepro.core.schedules import PREDICTIONS, VARIANCE_KINDS, Schedule, gather

Model = Callable[[Tensor, Tensor], Tensor]
Generators = torch.Generator | Sequence[torch.Generator] | None
Callback = Callable[["StepState"], "StepState | None"]

LEARNED_VARIANCES = ("learned_range", "learned")


@dataclass(frozen=True)
class StepState:
    """What a sampler knows at one step; the callback may return a replaced copy."""

    i: int  # step number in this run (0 = first)
    t_index: int  # index into the schedule
    timestep: int  # original model timestep given to the model
    alpha_bar: float  # alpha-bar of the current level
    alpha_bar_prev: float  # alpha-bar of the level this step goes to
    x: Tensor  # current sample
    model_output: Tensor  # raw network output (with variance channels if learned)
    eps: Tensor
    x0: Tensor
    mean: Tensor  # the next sample before noise
    variance: Tensor  # elementwise variance of the noise about to be added
    noise: Tensor | None  # standard normal noise about to be added (None: deterministic)


# ----------------------------------------------------------------------------- seeding


def make_generators(
    seeds: Sequence[int], device: str | torch.device = "cpu"
) -> list[torch.Generator]:
    """One seeded ``torch.Generator`` per sample."""
    return [torch.Generator(device).manual_seed(int(s)) for s in seeds]


def per_sample_noise(
    shape: Sequence[int],
    generators: Generators,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise of ``shape``; with a list of generators row k uses only generator k."""
    if generators is None or isinstance(generators, torch.Generator):
        gen_device = generators.device if generators is not None else device
        out = torch.randn(tuple(shape), generator=generators, device=gen_device, dtype=dtype)
        return out.to(device)
    if len(generators) != shape[0]:
        raise ValueError(f"got {len(generators)} generators for a batch of {shape[0]}")
    rows = [
        torch.randn(tuple(shape[1:]), generator=g, device=g.device, dtype=dtype).to(device)
        for g in generators
    ]
    return torch.stack(rows)


# ----------------------------------------------------------------------------- step math


def _check_knobs(prediction: str, variance: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; expected one of {PREDICTIONS}")
    if variance not in VARIANCE_KINDS:
        raise ValueError(f"unknown variance {variance!r}; expected one of {VARIANCE_KINDS}")


def split_output(output: Tensor, x: Tensor, variance: str) -> tuple[Tensor, Tensor | None]:
    """(prediction, variance values): splits the channels when the variance is learned."""
    if variance in LEARNED_VARIANCES:
        if output.shape[1] != 2 * x.shape[1]:
            raise ValueError(
                f"variance={variance!r} needs {2 * x.shape[1]} output channels, "
                f"got {output.shape[1]}"
            )
        pred, var_values = output.chunk(2, dim=1)
        return pred, var_values
    if output.shape != x.shape:
        raise ValueError(
            f"model output shape {tuple(output.shape)} != sample shape {tuple(x.shape)}"
        )
    return output, None


def x0_eps_from_prediction(
    pred: Tensor, x: Tensor, alpha_bar: Tensor, prediction: str
) -> tuple[Tensor, Tensor]:
    """(x0, eps) implied by a prediction at a level with (broadcastable) ``alpha_bar``."""
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    if prediction == "eps":
        return (x - s * pred) / a, pred
    if prediction == "x0":
        return pred, (x - a * pred) / s
    return a * x - s * pred, s * x + a * pred


def ddim_mean_variance(
    x0: Tensor,
    eps: Tensor,
    alpha_bar: float | Tensor,
    alpha_bar_prev: float | Tensor,
    eta: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """DDIM (Song et al. eq. 12): mean and variance of x_prev given x0 and eps."""
    alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)
    alpha_bar_prev = torch.as_tensor(alpha_bar_prev, dtype=torch.float64)
    var = torch.zeros((), dtype=torch.float64)
    if eta > 0:
        var = eta**2 * (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)
    a_prev = alpha_bar_prev.sqrt().to(x0)
    direction = (1 - alpha_bar_prev - var).clamp(min=0).sqrt().to(x0)
    mean = a_prev * x0 + direction * eps
    return mean, var.to(x0).expand_as(x0)


def ddim_affine(alpha_bar: float, alpha_bar_prev: float) -> tuple[float, float]:
    """(a, b) of the deterministic DDIM step written as ``x_prev = a * x + b * eps``, in float64.

    ``a = sqrt(abar_prev / abar)``, ``b = sqrt(1 - abar_prev) - sqrt(abar_prev (1 - abar) / abar)``
    (EDICT's form; the same map as ``ddim_mean_variance`` at eta = 0 with x0 from x and eps). For
    a GIVEN eps the step is exactly invertible: ``x = (x_prev - b * eps) / a``.
    """
    alpha_bar, alpha_bar_prev = float(alpha_bar), float(alpha_bar_prev)
    if not (0.0 < alpha_bar <= 1.0 and 0.0 < alpha_bar_prev <= 1.0):
        raise ValueError(f"alpha-bars must lie in (0, 1], got {alpha_bar}, {alpha_bar_prev}")
    a = np.sqrt(alpha_bar_prev / alpha_bar)
    b = np.sqrt(1.0 - alpha_bar_prev) - np.sqrt(alpha_bar_prev * (1.0 - alpha_bar) / alpha_bar)
    return float(a), float(b)


def _timestep_batch(schedule: Schedule, t_index: int, x: Tensor) -> Tensor:
    return torch.full(
        (x.shape[0],), int(schedule.timesteps[t_index]), device=x.device, dtype=torch.long
    )


def _advance(state: StepState, callback: Callback | None) -> Tensor:
    if callback is not None:
        state = callback(state) or state
    if state.noise is None:
        return state.mean
    return state.mean + state.variance.sqrt() * state.noise


def _grad_context(enable_grad: bool) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if enable_grad else torch.no_grad()


def _clip(x0: Tensor, clip_x0: float | None) -> Tensor:
    return x0 if clip_x0 is None else x0.clamp(-clip_x0, clip_x0)


def _check_grid(timesteps: Sequence[int] | np.ndarray | None, schedule: Schedule) -> list[int]:
    if timesteps is None:
        return list(range(len(schedule) - 1, -1, -1))
    grid = [int(t) for t in np.asarray(timesteps).reshape(-1)]
    if not grid or any(a <= b for a, b in zip(grid, grid[1:])):
        raise ValueError("timesteps must be a non-empty, strictly DESCENDING list of indices")
    if grid[0] >= len(schedule) or grid[-1] < 0:
        raise ValueError(f"timesteps must lie in [0, {len(schedule)}), got {grid[0]}..{grid[-1]}")
    return grid


# ----------------------------------------------------------------------------- samplers


def sample_ddpm(
    model: Model,
    x: Tensor,
    schedule: Schedule,
    *,
    prediction: str = "eps",
    variance: str = "fixed_small",
    clip_x0: float | None = None,
    start_index: int | None = None,
    generator: Generators = None,
    callback: Callback | None = None,
    progress: bool = False,
    enable_grad: bool = False,
) -> Tensor:
    """DDPM ancestral sampling (see the module docstring)."""
    _check_knobs(prediction, variance)
    start = len(schedule) - 1 if start_index is None else int(start_index)
    if not 0 <= start < len(schedule):
        raise ValueError(f"start_index must lie in [0, {len(schedule)}), got {start}")
    abar = schedule.alphas_cumprod
    with _grad_context(enable_grad):
        for i, t in enumerate(track(range(start, -1, -1), disable=not progress, desc="ddpm")):
            output = model(x, _timestep_batch(schedule, t, x))
            pred, var_values = split_output(output, x, variance)
            x0, eps = x0_eps_from_prediction(pred, x, gather(abar, t, x), prediction)
            x0 = _clip(x0, clip_x0)
            mean, _, _ = schedule.posterior_mean_variance(x0, x, t)
            var, _ = schedule.model_variance(t, x, variance, var_values)
            noise = per_sample_noise(x.shape, generator, x.device, x.dtype) if t > 0 else None
            state = StepState(
                i=i, t_index=t, timestep=int(schedule.timesteps[t]), alpha_bar=float(abar[t]),
                alpha_bar_prev=float(schedule.alphas_cumprod_prev[t]), x=x, model_output=output,
                eps=eps, x0=x0, mean=mean, variance=var, noise=noise,
            )  # fmt: skip
            x = _advance(state, callback)
    return x


def sample_ddim(
    model: Model,
    x: Tensor,
    schedule: Schedule,
    *,
    timesteps: Sequence[int] | np.ndarray | None = None,
    eta: float = 0.0,
    final_alpha_cumprod: float = 1.0,
    prediction: str = "eps",
    variance: str = "fixed_small",
    clip_x0: float | None = None,
    eps_from_clipped_x0: bool = False,
    generator: Generators = None,
    callback: Callback | None = None,
    progress: bool = False,
    enable_grad: bool = False,
) -> Tensor:
    """DDIM sampling over a descending grid of schedule indices (see the module docstring)."""
    _check_knobs(prediction, variance)
    grid = _check_grid(timesteps, schedule)
    abar = schedule.alphas_cumprod
    with _grad_context(enable_grad):
        for i, t in enumerate(track(grid, disable=not progress, desc="ddim")):
            a_t = float(abar[t])
            a_prev = float(abar[grid[i + 1]]) if i + 1 < len(grid) else float(final_alpha_cumprod)
            output = model(x, _timestep_batch(schedule, t, x))
            pred, _ = split_output(output, x, variance)
            x0, eps = x0_eps_from_prediction(
                pred, x, torch.tensor(a_t, dtype=torch.float64), prediction
            )
            x0, eps = x0.to(x.dtype), eps.to(x.dtype)
            if clip_x0 is not None:
                x0 = _clip(x0, clip_x0)
                if eps_from_clipped_x0:
                    eps = (x - a_t**0.5 * x0) / (1 - a_t) ** 0.5
            mean, var = ddim_mean_variance(x0, eps, a_t, a_prev, eta)
            noise = per_sample_noise(x.shape, generator, x.device, x.dtype) if eta > 0 else None
            state = StepState(
                i=i, t_index=t, timestep=int(schedule.timesteps[t]), alpha_bar=a_t,
                alpha_bar_prev=a_prev, x=x, model_output=output, eps=eps, x0=x0, mean=mean,
                variance=var, noise=noise,
            )  # fmt: skip
            x = _advance(state, callback)
    return x


def invert_ddim(
    model: Model,
    x0: Tensor,
    schedule: Schedule,
    *,
    timesteps: Sequence[int] | np.ndarray | None = None,
    final_alpha_cumprod: float = 1.0,
    prediction: str = "eps",
    variance: str = "fixed_small",
    callback: Callback | None = None,
    progress: bool = False,
    enable_grad: bool = False,
) -> Tensor:
    """Deterministic DDIM inversion: x0 -> x_T over the reversed grid (see the module docstring).

    ``timesteps`` is the same DESCENDING grid ``sample_ddim`` would use; the callback's state has
    ``alpha_bar`` = the level being left and ``alpha_bar_prev`` = the level being reached.
    """
    _check_knobs(prediction, variance)
    grid = _check_grid(timesteps, schedule)
    abar = schedule.alphas_cumprod
    x = x0
    with _grad_context(enable_grad):
        for i, k in enumerate(
            track(range(len(grid) - 1, -1, -1), disable=not progress, desc="invert")
        ):
            t = grid[k]
            a_from = float(abar[grid[k + 1]]) if k + 1 < len(grid) else float(final_alpha_cumprod)
            a_to = float(abar[t])
            output = model(x, _timestep_batch(schedule, t, x))
            pred, _ = split_output(output, x, variance)
            level = torch.tensor(a_from, dtype=torch.float64)
            x0_hat, eps = x0_eps_from_prediction(pred, x, level, prediction)
            x0_hat, eps = x0_hat.to(x.dtype), eps.to(x.dtype)
            mean, var = ddim_mean_variance(x0_hat, eps, a_from, a_to, 0.0)
            state = StepState(
                i=i, t_index=t, timestep=int(schedule.timesteps[t]), alpha_bar=a_from,
                alpha_bar_prev=a_to, x=x, model_output=output, eps=eps, x0=x0_hat, mean=mean,
                variance=var, noise=None,
            )  # fmt: skip
            x = _advance(state, callback)
    return x


# ----------------------------------------------------------------------------- guidance


def _cat_cond(uncond: Any, cond: Any) -> Any:
    if isinstance(cond, Tensor):
        return torch.cat([uncond, cond])
    if isinstance(cond, dict):
        return {k: _cat_cond(uncond[k], cond[k]) for k in cond}
    if isinstance(cond, (tuple, list)):
        return type(cond)(_cat_cond(u, c) for u, c in zip(uncond, cond))
    raise ValueError(f"conditioning must be a tensor, dict or tuple of tensors, got {type(cond)}")


def cfg_model(
    model: Callable[[Tensor, Tensor, Any], Tensor],
    cond: Any,
    uncond: Any,
    scale: float,
    *,
    rescale: float = 0.0,
    guided_channels: int | None = None,
    batched: bool = True,
) -> Model:
    """Classifier-free guidance: ``out_u + scale * (out_c - out_u)`` as a ``model(x, t)`` callable.

    ``model(x, t, c)`` is evaluated with ``uncond`` and ``cond`` (one concatenated call when
    ``batched``, else two). ``guided_channels`` limits guidance to the first channels (e.g. the
    eps half of a learned-variance output; the rest comes from the conditional output).
    ``rescale`` is the guidance-rescale phi (per-sample std over the non-batch dims).
    With ``scale == 1`` only the conditional model is evaluated.
    """

    def guided(x: Tensor, t: Tensor) -> Tensor:
        if scale == 1.0:
            return model(x, t, cond)
        if batched:
            out_u, out_c = model(
                torch.cat([x, x]), torch.cat([t, t]), _cat_cond(uncond, cond)
            ).chunk(2)
        else:
            out_u, out_c = model(x, t, uncond), model(x, t, cond)
        n = out_c.shape[1] if guided_channels is None else guided_channels
        g = out_u[:, :n] + scale * (out_c[:, :n] - out_u[:, :n])
        if rescale > 0:
            dims = tuple(range(1, g.ndim))
            ratio = out_c[:, :n].std(dim=dims, keepdim=True) / g.std(dim=dims, keepdim=True)
            g = rescale * g * ratio + (1 - rescale) * g
        return torch.cat([g, out_c[:, n:]], dim=1)

    return guided
