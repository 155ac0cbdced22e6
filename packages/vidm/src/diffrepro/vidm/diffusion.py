"""The diffusion process both generators share: schedule, training loss and respaced sampling.

- Schedule: ADM "linear" betas (1e-4 .. 0.02 for T = 1000), eps prediction, learned-range variance.
- Loss (the P2-weighting fork the official code trains with): per sample
  ``w_t * mean((eps - eps_hat)^2) + vb_scale * L_vb(t)`` with ``w_t = 1 / (k + SNR_t)^gamma``
  (gamma = k = 1) and the iDDPM variational term in bits/dim, which sees the mean prediction
  detached, so it trains only the variance channels. t is uniform over the T steps.
- Sampling: ancestral DDPM over a respaced chain (guided-diffusion strings: the official
  generation used "ddim100" = every 10th step, which despite its name is ancestral, not DDIM),
  the model receiving the original step indices, x0 clipped to [-1, 1]. The reverse variance is
  the learned range (official); ``sampling_variance="fixed_small"`` ignores the variance head,
  for briefly trained models whose head has not converged (the CPU demo).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from diffrepro.core.losses import diffusion_loss, p2_weights, sample_timesteps
from diffrepro.core.samplers import per_sample_noise, sample_ddpm
from diffrepro.core.schedules import Schedule, space_timesteps

Model = Callable[[Tensor, Tensor], Tensor]
SAMPLING_VARIANCES = ("learned_range", "fixed_small", "fixed_large")
Generators = torch.Generator | Sequence[torch.Generator] | None


@dataclass(frozen=True)
class DiffusionConfig:
    num_timesteps: int = 1000
    beta_schedule: str = "linear"
    p2_gamma: float = 1.0
    p2_k: float = 1.0
    vb_scale: float = 1.0
    respacing: str = "ddim100"
    sampling_variance: str = "learned_range"
    clip_x0: bool = True

    def __post_init__(self) -> None:
        if self.sampling_variance not in SAMPLING_VARIANCES:
            raise ValueError(
                f"unknown sampling_variance {self.sampling_variance!r}; "
                f"expected one of {', '.join(SAMPLING_VARIANCES)}"
            )


def make_schedule(cfg: DiffusionConfig) -> Schedule:
    return Schedule.named(cfg.beta_schedule, cfg.num_timesteps)


def sampling_schedule(cfg: DiffusionConfig) -> Schedule:
    """The respaced chain used for generation (``cfg.respacing``, e.g. "ddim100" or "25")."""
    return make_schedule(cfg).respace(space_timesteps(cfg.num_timesteps, cfg.respacing))


def training_loss(
    model: Model,
    x0: Tensor,
    schedule: Schedule,
    cfg: DiffusionConfig,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Batch means of the loss terms ("loss", "mse", "vb") at uniformly drawn steps."""
    t = sample_timesteps(x0.shape[0], len(schedule), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    weights = p2_weights(schedule, cfg.p2_gamma, cfg.p2_k)
    terms = diffusion_loss(
        model,
        x0,
        t,
        schedule,
        noise=noise,
        variance="learned_range",
        weights=weights,
        vb_scale=cfg.vb_scale,
    )
    return {name: value.mean() for name, value in terms.items()}


def initial_noise(
    shape: Sequence[int], generators: Generators, device: torch.device, truncation: float = 0.0
) -> Tensor:
    """x_T ~ N(0, I), or, for ``truncation`` a > 0, the normal truncated to [-a, a] (an option
    for the paper's unverified "sampling space truncation"; off by default)."""
    if truncation <= 0:
        return per_sample_noise(shape, generators, device)
    normal = torch.distributions.Normal(0.0, 1.0)
    low = float(normal.cdf(torch.tensor(-truncation)))
    uniform = _per_sample_uniform(shape, generators).to(device)
    return normal.icdf(low + uniform * (1 - 2 * low))


def _per_sample_uniform(shape: Sequence[int], generators: Generators) -> Tensor:
    if generators is None or isinstance(generators, torch.Generator):
        return torch.rand(tuple(shape), generator=generators)
    return torch.stack([torch.rand(tuple(shape[1:]), generator=g) for g in generators])


def sample(
    model: Model,
    x_t: Tensor,
    schedule: Schedule,
    cfg: DiffusionConfig,
    generators: Generators = None,
) -> Tensor:
    """Ancestral sampling from ``x_t`` down to x_0 with ``cfg.sampling_variance``."""
    variance = cfg.sampling_variance
    if variance != "learned_range":
        learned = model

        def model(x: Tensor, t: Tensor) -> Tensor:
            return learned(x, t)[:, : x.shape[1]]

    return sample_ddpm(
        model,
        x_t,
        schedule,
        variance=variance,
        clip_x0=1.0 if cfg.clip_x0 else None,
        generator=generators,
    )
