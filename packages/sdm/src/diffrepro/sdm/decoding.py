"""One SDM iteration, predict → pick → sample, and the T-iteration inpainting loop (spec §3.3).

State between iterations: ``x`` (known and committed pixels, zeros in the hole), ``mask``
(1 = known or committed), ``uncertainty`` (0 on the original known pixels, 1 on still-unknown
pixels, the predicted uncertainty in [0, 1] on committed generated pixels).

- predict: ``model(x, mask0, mask, uncertainty, tau) -> (mean, sigma)``, sigma ∈ [0, 1];
- pick: among unknown pixels, commit the n_t with the lowest per-pixel uncertainty (channel mean
  of sigma), ties broken by flat index (stable sort);
- sample: known pixels copied exactly; committed pixels = mean + α·sigma·z (``continuous`` = True
  re-samples every committed pixel from the newest prediction, the paper's "continuous sampling";
  False freezes a pixel once committed); the last iteration writes the mean without noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffrepro.sdm.masks import assert_mask
from diffrepro.sdm.schedule import commit_counts

Predictor = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class DecodeConfig:
    """Test-time options: iterations, mask schedule, noise scale α, continuous sampling."""

    steps: int = 4
    schedule: str = "linear"
    alpha: float = 0.01
    continuous: bool = True


@dataclass(frozen=True)
class Step:
    """What one iteration produced (for figures and tests)."""

    image: torch.Tensor  # x_t, (B, 3, H, W)
    mask: torch.Tensor  # m_t, (B, 1, H, W), 1 = known or committed
    uncertainty: torch.Tensor  # u_t, (B, 1, H, W)
    mean: torch.Tensor
    sigma: torch.Tensor


def pixel_uncertainty(sigma: torch.Tensor) -> torch.Tensor:
    """Per-pixel uncertainty (B, 1, H, W): the channel mean of sigma ∈ [0, 1]."""
    return sigma.mean(dim=1, keepdim=True)


def pick(uncertainty: torch.Tensor, mask: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``mask`` plus, per sample b, its ``counts[b]`` least uncertain unknown pixels."""
    flat_u = uncertainty.flatten(1).masked_fill(mask.flatten(1).bool(), float("inf"))
    order = torch.sort(flat_u, dim=1, stable=True).indices
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    ranks = torch.empty_like(order).scatter_(1, order, positions)
    picked = ranks < counts.to(ranks.device)[:, None]
    return (mask.flatten(1).bool() | picked).to(mask.dtype).view_as(mask)


def uncertainty_map(mask0: torch.Tensor, mask: torch.Tensor, pixel_u: torch.Tensor) -> torch.Tensor:
    """u: 0 on original known pixels, 1 on unknown ones, ``pixel_u`` clamped to [0, 1] between."""
    committed = pixel_u.clamp(0.0, 1.0)
    return torch.where(mask0.bool(), 0.0, torch.where(mask.bool(), committed, 1.0))


def compose(
    image: torch.Tensor, mask0: torch.Tensor, mask: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Known pixels of ``image`` exactly, ``values`` on committed ones, zeros on the hole."""
    generated = torch.where(mask.bool(), values, torch.zeros_like(values))
    return torch.where(mask0.bool(), image, generated)


def initial_state(image: torch.Tensor, mask0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x_0 = image ⊙ m_0 and u_0 = 1 - m_0."""
    return compose(image, mask0, mask0, image), 1.0 - mask0


def advance(
    image: torch.Tensor,
    mask0: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor],
    prediction: tuple[torch.Tensor, torch.Tensor],
    counts: torch.Tensor,
    *,
    alpha: float,
    continuous: bool = True,
    last: bool = False,
    generator: torch.Generator | None = None,
) -> Step:
    """Pick ``counts`` pixels per sample from ``state = (x, mask)`` and sample the new x."""
    x, mask = state
    mean, sigma = prediction
    new_mask = pick(pixel_uncertainty(sigma), mask, counts)
    u = uncertainty_map(mask0, new_mask, pixel_uncertainty(sigma))
    if last:
        values = mean.clamp(-1.0, 1.0)
    else:
        z = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        values = (mean + alpha * sigma * z).clamp(-1.0, 1.0)
    if not continuous:
        values = torch.where(mask.bool(), x, values)
    return Step(compose(image, mask0, new_mask, values), new_mask, u, mean, sigma)


def inpaint(
    model: Predictor,
    image: torch.Tensor,
    mask0: torch.Tensor,
    cfg: DecodeConfig | None = None,
    generator: torch.Generator | None = None,
) -> list[Step]:
    """Run ``cfg.steps`` iterations; the last Step's image is the result (hole fully filled)."""
    cfg = cfg or DecodeConfig()
    assert_mask(mask0, "mask0")
    x, u = initial_state(image, mask0)
    mask = mask0
    n_unknown = (1 - mask0).flatten(1).sum(1).long().tolist()
    counts = torch.tensor([commit_counts(n, cfg.steps, cfg.schedule) for n in n_unknown])
    steps: list[Step] = []
    for t in range(1, cfg.steps + 1):
        tau = torch.full((image.shape[0],), (t - 1) / cfg.steps, device=image.device)
        prediction = model(x, mask0, mask, u, tau)
        step = advance(
            image,
            mask0,
            (x, mask),
            prediction,
            counts[:, t - 1],
            alpha=cfg.alpha,
            continuous=cfg.continuous,
            last=t == cfg.steps,
            generator=generator,
        )
        x, mask, u = step.image, step.mask, step.uncertainty
        steps.append(step)
    return steps
