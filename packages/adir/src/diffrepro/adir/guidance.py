"""The ADIR guided step: a first-order Taylor expansion of log p(y | x_t) around the DDPM mean.

At every reverse step (spec §3.3), with ε the network's noise prediction:

    y_t = √ᾱ · y + √(1-ᾱ) · A ε               (the measurement at the sampled noise level)
    g   = -2 Aᵀ (A μ - y_t)                    (gradient of -‖A x - y_t‖² at x = μ)
    μ' = μ + s Σ g                             (then x = μ' + Σ^½ z as usual)

This rests on the exact identity ᾱ ‖A x̂₀(x) - y‖² = ‖A x - y_t‖² with x̂₀ = (x - √(1-ᾱ) ε)/√ᾱ;
ε is a constant (no back-propagation through the network, unlike DPS).

Ambiguous points of the reconstruction are options (defaults follow the spec, §9):

- ``gradient``: "plain" (the paper's g as written) or "likelihood" (the literal Gaussian
  likelihood gradient ``-Aᵀ(A μ - y_t) / (σ_e² ᾱ)``, which needs the noise level σ_e > 0);
- ``eps_source``: "reuse" the ε already computed for μ (default, no extra network call) or
  "reevaluate" ε_θ(μ, t-1) at the level being sampled;
- ``level``: ᾱ of the variable being sampled, "next" = ᾱ_{t-1} (default), or "current" = ᾱ_t;
- ``final``: "none" (the paper) or "discrepancy", a final CGLS correction of the output that
  brings its measurement residual down to the noise level σ (see :mod:`.consistency`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from diffrepro.core.samplers import StepState, split_output, x0_eps_from_prediction
from diffrepro.core.schedules import Schedule

from .operators import LinearOperator, spectral_norm_sq

GRADIENTS = ("plain", "likelihood")
EPS_SOURCES = ("reuse", "reevaluate")
LEVELS = ("next", "current")
FINALS = ("none", "discrepancy")


@dataclass(frozen=True)
class GuidanceConfig:
    """Options of the ADIR guided step (see the module docstring)."""

    scale: float = 1.0
    gradient: str = "plain"
    eps_source: str = "reuse"
    level: str = "next"
    final: str = "none"  # "discrepancy": a final projection to the noise level (consistency.py)

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("gradient", self.gradient, GRADIENTS),
            ("eps_source", self.eps_source, EPS_SOURCES),
            ("level", self.level, LEVELS),
            ("final", self.final, FINALS),
        ):
            if value not in allowed:
                raise ValueError(f"guidance {name} must be one of {allowed}, got {value!r}")
        if self.scale < 0:
            raise ValueError(f"guidance scale must be non-negative, got {self.scale}")


def noisy_measurement(op: LinearOperator, y: Tensor, eps: Tensor, alpha_bar: float) -> Tensor:
    """y_t = √ᾱ y + √(1-ᾱ) A ε."""
    return alpha_bar**0.5 * y + (1 - alpha_bar) ** 0.5 * op.forward(eps)


def guidance_gradient(
    op: LinearOperator,
    mean: Tensor,
    y_t: Tensor,
    *,
    gradient: str = "plain",
    alpha_bar: float = 1.0,
    noise_sigma: float = 0.0,
) -> Tensor:
    """g = -2 Aᵀ(A μ - y_t) ("plain") or -Aᵀ(A μ - y_t) / (σ_e² ᾱ) ("likelihood")."""
    back = op.adjoint(op.forward(mean) - y_t)
    if gradient == "plain":
        return -2 * back
    if noise_sigma <= 0:
        raise ValueError("the likelihood-scaled gradient needs a measurement noise sigma > 0")
    return -back / (noise_sigma**2 * alpha_bar)


def guided_mean(mean: Tensor, variance: Tensor, grad: Tensor, scale: float) -> Tensor:
    """μ' = μ + s Σ g (Σ elementwise: fixed or learned variance)."""
    return mean + scale * variance * grad


def scale_for(op: LinearOperator, shape: tuple[int, ...], strength: float = 1.5) -> float:
    """A guidance scale ``strength / λ_max(A Aᵀ)``, comparable across operators.

    The step contracts the residual by ``I - 2 s Σ A Aᵀ``; with this scale it decreases at every
    step whose variance is below ``1 / strength`` (the admissible range ``s Σ λ_max < 1``).
    """
    return strength / spectral_norm_sq(op, shape)


def adir_callback(
    op: LinearOperator,
    y: Tensor,
    cfg: GuidanceConfig | None = None,
    *,
    noise_sigma: float = 0.0,
    eps_model: Callable[[Tensor, int], Tensor] | None = None,
) -> Callable[[StepState], StepState]:
    """A per-step callback for ``diffrepro.core.samplers.sample_ddpm`` applying the ADIR step.

    ``eps_model(x, level_index)`` returns ε_θ at a schedule index; it is needed only for
    ``eps_source="reevaluate"`` (see :func:`eps_at_index`).
    """
    cfg = cfg or GuidanceConfig()
    if cfg.eps_source == "reevaluate" and eps_model is None:
        raise ValueError('eps_source="reevaluate" needs eps_model')

    def step(state: StepState) -> StepState:
        alpha_bar = state.alpha_bar_prev if cfg.level == "next" else state.alpha_bar
        eps = state.eps
        if cfg.eps_source == "reevaluate" and state.t_index > 0:
            eps = eps_model(state.mean, state.t_index - 1)
        y_t = noisy_measurement(op, y, eps, alpha_bar)
        grad = guidance_gradient(
            op, state.mean, y_t, gradient=cfg.gradient, alpha_bar=alpha_bar, noise_sigma=noise_sigma
        )
        return replace(state, mean=guided_mean(state.mean, state.variance, grad, cfg.scale))

    return step


def eps_at_index(
    model: Callable[[Tensor, Tensor], Tensor],
    schedule: Schedule,
    prediction: str = "eps",
    variance: str = "fixed_small",
) -> Callable[[Tensor, int], Tensor]:
    """``eps_model(x, index)`` for :func:`adir_callback` from a raw ``model(x, t)``."""

    def eps_model(x: Tensor, index: int) -> Tensor:
        t = torch.full(
            (x.shape[0],), int(schedule.timesteps[index]), device=x.device, dtype=torch.long
        )
        pred, _ = split_output(model(x, t), x, variance)
        abar = torch.tensor(float(schedule.alphas_cumprod[index]), dtype=torch.float64)
        return x0_eps_from_prediction(pred, x, abar, prediction)[1].to(x.dtype)

    return eps_model
