"""The noise regulariser of pix2pix-zero's inversion (spec §3.3, as coded officially).

Each predicted noise map is pushed towards i.i.d. N(0, 1) before the inversion step uses it:

- ``auto_corr_loss``: for every sample and channel, a pyramid of the map (2×2 average pooling,
  no ×2 variance correction, down to 8×8 or below), and at each level one random roll δ:
  ``mean(η · roll_H(η, δ))² + mean(η · roll_W(η, δ))²`` (the official code squares each mean).
- ``kl_divergence``: ``σ² + μ² − 1 − log(σ² + 1e-7)`` over all elements (unbiased variance).
- ``regularize_noise``: ``num_reg_steps`` rounds of ``num_ac_rolls`` gradient steps on the
  autocorrelation loss (each with fresh rolls, step ``lambda_ac / num_ac_rolls``) and one step on
  the KL term (step ``lambda_kl``).

Rolls are drawn with ``torch.randint(roll_low, S // 2, generator=g)`` in the order sample →
channel → level. ``roll_low=1`` is the official 2024 fix (a roll of 0 turns the term into
``mean(η²)²``, which fights the KL term); ``roll_low=0`` is the pre-fix behaviour that diffusers'
``StableDiffusionPix2PixZeroPipeline`` still has, kept for parity tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

ROLL_LOWS = (0, 1)


@dataclass(frozen=True)
class RegularizerConfig:
    """Weights and step counts of the regulariser (official defaults)."""

    lambda_ac: float = 20.0
    lambda_kl: float = 20.0
    num_reg_steps: int = 5
    num_ac_rolls: int = 5
    roll_low: int = 1  # 1: the 2024 fix (rolls in [1, S/2)); 0: pre-fix (diffusers)

    def __post_init__(self) -> None:
        if self.lambda_ac < 0 or self.lambda_kl < 0:
            raise ValueError("regularizer lambda_ac and lambda_kl must be >= 0")
        if self.num_reg_steps < 0 or self.num_ac_rolls < 1:
            raise ValueError("regularizer num_reg_steps must be >= 0 and num_ac_rolls >= 1")
        if self.roll_low not in ROLL_LOWS:
            raise ValueError(f"regularizer roll_low must be one of {ROLL_LOWS}")

    @property
    def active(self) -> bool:
        return self.num_reg_steps > 0 and (self.lambda_ac > 0 or self.lambda_kl > 0)


def sample_roll(size: int, generator: torch.Generator | None, roll_low: int = 1) -> int:
    """A roll amount in ``[roll_low, size // 2)``."""
    if size // 2 <= roll_low:
        raise ValueError(f"noise maps of size {size} are too small for rolls >= {roll_low}")
    return int(torch.randint(roll_low, size // 2, (1,), generator=generator).item())


def pyramid(noise: Tensor) -> list[Tensor]:
    """The map and its 2×2 average-pooled copies, down to a size <= 8 (spatial dim 2)."""
    levels = [noise]
    while levels[-1].shape[2] > 8:
        levels.append(F.avg_pool2d(levels[-1], kernel_size=2))
    return levels


def auto_corr_loss(
    eps: Tensor, generator: torch.Generator | None = None, roll_low: int = 1
) -> Tensor:
    """Sum over samples, channels and pyramid levels of the squared mean autocorrelations."""
    loss = eps.new_zeros(())
    for i in range(eps.shape[0]):
        for j in range(eps.shape[1]):
            for noise in pyramid(eps[i : i + 1, j : j + 1]):
                roll = sample_roll(noise.shape[2], generator, roll_low)
                loss = loss + (noise * torch.roll(noise, shifts=roll, dims=2)).mean() ** 2
                loss = loss + (noise * torch.roll(noise, shifts=roll, dims=3)).mean() ** 2
    return loss


def kl_divergence(eps: Tensor) -> Tensor:
    """``var + mean² − 1 − log(var + 1e-7)``: twice the KL to N(0, 1) up to a constant."""
    mean, var = eps.mean(), eps.var()
    return var + mean**2 - 1 - torch.log(var + 1e-7)


def _grad(loss_fn: Callable[[Tensor], Tensor], value: Tensor) -> Tensor:
    var = value.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss_fn(var), var)
    return grad.detach()


def regularize_noise(
    output: Tensor,
    cfg: RegularizerConfig,
    *,
    to_eps: Callable[[Tensor], Tensor] = lambda out: out,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The regularised model output (gradient steps on the losses of ``to_eps(output)``)."""
    if not cfg.active:
        return output
    for _ in range(cfg.num_reg_steps):
        if cfg.lambda_ac > 0:
            for _ in range(cfg.num_ac_rolls):
                grad = _grad(lambda v: auto_corr_loss(to_eps(v), generator, cfg.roll_low), output)
                output = output - cfg.lambda_ac * (grad / cfg.num_ac_rolls)
        if cfg.lambda_kl > 0:
            output = output - cfg.lambda_kl * _grad(lambda v: kl_divergence(to_eps(v)), output)
        output = output.detach()
    return output
