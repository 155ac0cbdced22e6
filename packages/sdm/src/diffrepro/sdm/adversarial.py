"""Non-saturating logistic GAN losses and lazy R1 (StyleGAN2 / MAT recipe, spec §3.4)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def generator_loss(critic: Critic, fake: torch.Tensor, mask0: torch.Tensor) -> torch.Tensor:
    """softplus(-D(fake)), the non-saturating generator loss."""
    return F.softplus(-critic(fake, mask0)).mean()


def discriminator_loss(
    critic: Critic, real: torch.Tensor, fake: torch.Tensor, mask0: torch.Tensor
) -> torch.Tensor:
    """softplus(D(fake)) + softplus(-D(real)); ``fake`` is detached."""
    return F.softplus(critic(fake.detach(), mask0)).mean() + F.softplus(-critic(real, mask0)).mean()


def r1_penalty(
    critic: Critic, real: torch.Tensor, mask0: torch.Tensor, gamma: float
) -> torch.Tensor:
    """γ/2 · E‖∇_x D(x)‖² on real images (multiply by the interval for lazy regularisation)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(real, mask0).sum(), real, create_graph=True)
    return 0.5 * gamma * grad.square().flatten(1).sum(1).mean()
