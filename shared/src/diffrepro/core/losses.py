"""Training losses for discrete-time diffusion models (guided-diffusion / iDDPM semantics).

All per-sample: every loss returns a tensor of shape (B,); take ``.mean()`` yourself.
``t`` is a LongTensor (B,) of indices into the ``Schedule`` (the model receives
``schedule.timesteps[t]``, the original timesteps).

- ``sample_timesteps(batch_size, num_timesteps, *, generator=None, device="cpu")``: uniform
  indices; ``generator`` may be one ``torch.Generator`` or a list (one per sample, so sample k's
  timestep depends only on generator k).
- ``prediction_target(schedule, x0, eps, t, prediction)``: eps, x0 or v (``sqrt(abar) eps -
  sqrt(1 - abar) x0``).
- ``p2_weights(schedule, gamma=1.0, k=1.0)``: P2 weighting ``1 / (k + SNR_t)^gamma`` per index
  (numpy float64; gamma = 0 gives all ones). Pass it (or any per-index array) as ``weights``.
- ``weighted_mse(output, target, t=None, weights=None)``: ``mean over dims of w_t (target -
  output)^2``.
- ``normal_kl(mean1, logvar1, mean2, logvar2)``: elementwise KL(N1 || N2) in nats.
- ``discretized_gaussian_log_likelihood(x, mean, log_scale, *, bin_half_width=1/255,
  exact_cdf=False)``: elementwise log-probability (nats) of data in [-1, 1] quantised to 256
  levels, the edge bins extending to -inf / +inf (ADM's decoder). ADM uses a tanh approximation of
  the normal CDF (the default); ``exact_cdf=True`` uses the exact one.
- ``vb_term_bits(schedule, x0, x_t, t, model_mean, model_log_variance, **decoder_kwargs)``: the
  variational-bound term in bits per dimension: ``KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t))`` for
  index > 0 and the decoder NLL ``-log p(x0|x_1)`` at index 0.
- ``diffusion_loss(model, x0, t, schedule, *, noise, prediction="eps", variance="fixed_small",
  weights=None, vb_scale=1.0) -> dict``: noises x0, calls ``model(x_t, timesteps)`` once,
  returns per-sample ``{"mse", "loss"}`` and, for a learned variance ("learned_range" /
  "learned"), ``"vb"``: ADM's hybrid loss, where the vb term sees the prediction DETACHED so it
  trains only the variance channels. ``loss = mse + vb_scale * vb``. ADM's RESCALED_MSE is
  ``vb_scale = T / 1000``; VIDM's P2 fork uses ``weights=p2_weights(sched, 1, 1)``, ``vb_scale=1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from diffrepro.core.samplers import split_output, x0_eps_from_prediction
from diffrepro.core.schedules import PREDICTIONS, VARIANCE_KINDS, Schedule, gather


def mean_flat(x: Tensor) -> Tensor:
    """Mean over all but the batch dimension."""
    return x.mean(dim=tuple(range(1, x.ndim)))


def sample_timesteps(
    batch_size: int,
    num_timesteps: int,
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Uniform indices in [0, num_timesteps); a list of generators draws one index from each."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randint(0, num_timesteps, (batch_size,), generator=generator).to(device)
    if len(generator) != batch_size:
        raise ValueError(f"got {len(generator)} generators for a batch of {batch_size}")
    draws = [torch.randint(0, num_timesteps, (1,), generator=g, device=g.device) for g in generator]
    return torch.cat([d.to(device) for d in draws])


def p2_weights(schedule: Schedule, gamma: float = 1.0, k: float = 1.0) -> np.ndarray:
    """P2 weighting (Choi et al. 2022): ``1 / (k + SNR_t) ** gamma`` for every schedule index."""
    return 1.0 / (k + schedule.snr) ** gamma


def prediction_target(
    schedule: Schedule, x0: Tensor, eps: Tensor, t: Tensor, prediction: str
) -> Tensor:
    """The regression target of a model trained to predict ``prediction``."""
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return schedule.v_target(x0, eps, t)
    raise ValueError(f"unknown prediction {prediction!r}; expected one of {PREDICTIONS}")


def weighted_mse(
    output: Tensor, target: Tensor, t: Tensor | None = None, weights: np.ndarray | None = None
) -> Tensor:
    """Per-sample ``mean((target - output)^2)``, times ``weights[t]`` when weights are given."""
    mse = mean_flat((target - output) ** 2)
    if weights is None:
        return mse
    if t is None:
        raise ValueError("weighted_mse: weights need the timestep indices t")
    return gather(np.asarray(weights, dtype=np.float64), t, mse) * mse


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """Elementwise KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) in nats."""
    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def _normal_cdf(x: Tensor, exact: bool) -> Tensor:
    if exact:
        return torch.special.ndtr(x)
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(
    x: Tensor,
    mean: Tensor,
    log_scale: Tensor,
    *,
    bin_half_width: float = 1.0 / 255,
    exact_cdf: bool = False,
) -> Tensor:
    """Elementwise log-likelihood (nats) of 8-bit data in [-1, 1], N(mean, exp(log_scale)^2)."""
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _normal_cdf(inv_std * (centered + bin_half_width), exact_cdf)
    cdf_min = _normal_cdf(inv_std * (centered - bin_half_width), exact_cdf)
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(
        x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta)
    )


def vb_term_bits(
    schedule: Schedule,
    x0: Tensor,
    x_t: Tensor,
    t: Tensor,
    model_mean: Tensor,
    model_log_variance: Tensor,
    *,
    bin_half_width: float = 1.0 / 255,
    exact_cdf: bool = False,
) -> Tensor:
    """Per-sample variational-bound term in bits/dim: posterior KL (t > 0), decoder NLL (t = 0)."""
    true_mean, _, true_log_var = schedule.posterior_mean_variance(x0, x_t, t)
    kl = mean_flat(normal_kl(true_mean, true_log_var, model_mean, model_log_variance)) / math.log(
        2.0
    )
    nll = -discretized_gaussian_log_likelihood(
        x0, model_mean, 0.5 * model_log_variance, bin_half_width=bin_half_width, exact_cdf=exact_cdf
    )
    nll = mean_flat(nll) / math.log(2.0)
    return torch.where(torch.as_tensor(t, device=x0.device).reshape(-1) == 0, nll, kl)


def diffusion_loss(
    model: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    t: Tensor,
    schedule: Schedule,
    *,
    noise: Tensor,
    prediction: str = "eps",
    variance: str = "fixed_small",
    weights: np.ndarray | None = None,
    vb_scale: float = 1.0,
) -> dict[str, Tensor]:
    """Per-sample training loss terms (see the module docstring)."""
    if variance not in VARIANCE_KINDS:
        raise ValueError(f"unknown variance {variance!r}; expected one of {VARIANCE_KINDS}")
    t = torch.as_tensor(t, device=x0.device).long()
    x_t = schedule.q_sample(x0, t, noise)
    timesteps = torch.tensor(schedule.timesteps, device=x0.device)[t]
    output = model(x_t, timesteps)
    pred, var_values = split_output(output, x_t, variance)
    target = prediction_target(schedule, x0, noise, t, prediction)
    terms = {"mse": weighted_mse(pred, target, t, weights)}
    terms["loss"] = terms["mse"]
    if var_values is not None:
        abar = gather(schedule.alphas_cumprod, t, x_t)
        x0_pred, _ = x0_eps_from_prediction(pred.detach(), x_t, abar, prediction)
        mean, _, _ = schedule.posterior_mean_variance(x0_pred, x_t, t)
        _, log_var = schedule.model_variance(t, x_t, variance, var_values)
        terms["vb"] = vb_term_bits(schedule, x0, x_t, t, mean, log_var)
        terms["loss"] = terms["mse"] + vb_scale * terms["vb"]
    return terms
