"""Adaptation: LoRA on the UNet's conv layers (Conv2d, and the Conv1d attention projections
``qkv`` / ``proj_out`` of the ADM layout), fine-tuned with the ε loss on retrieved images.

ADIR (v2) adapts the pretrained model to the image at hand by fine-tuning low-rank adapters on
its K nearest neighbours: ``min Σ_k Σ_t ‖ε - ε_θ(√ᾱ_t z_k + √(1-ᾱ_t) ε, t)‖²`` with t uniform,
Adam, the pretrained model's noise schedule (spec §3.4). With a learned-variance model only the
ε half of the output enters the loss (ℓ_simple, as the paper states).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from diffrepro.core.losses import diffusion_loss, sample_timesteps
from diffrepro.core.nn.lora import apply_lora, merge_lora
from diffrepro.core.schedules import Schedule

from .config import AdaptConfig

CONV_TYPES = (nn.Conv1d, nn.Conv2d)


def add_lora(model: nn.Module, cfg: AdaptConfig) -> list[str]:
    """Wrap every Conv1d / Conv2d ("all convolutional layers", spec §3.4; in the ADM layout the
    attention's qkv and proj_out are 1×1 Conv1d) and, with ``targets="conv+linear"``, every
    Linear; only the LoRA parameters train afterwards."""
    types = CONV_TYPES if cfg.targets == "conv" else (*CONV_TYPES, nn.Linear)
    return apply_lora(model, types, rank=cfg.rank, alpha=cfg.alpha)


def finetune(
    model: nn.Module,
    images: Tensor,
    schedule: Schedule,
    cfg: AdaptConfig,
    *,
    variance: str = "fixed_small",
    generator: torch.Generator | None = None,
    log: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Fine-tune the trainable (LoRA) parameters on ``images`` (K, C, H, W); returns the losses."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters: call add_lora first")
    device = next(model.parameters()).device
    images = images.to(device)
    optimiser = torch.optim.Adam(params, lr=cfg.lr)
    model.train()
    losses = []
    for step in range(cfg.iterations):
        pick = torch.randint(0, len(images), (cfg.batch_size,), generator=generator)
        x0 = images[pick.to(device)]
        t = sample_timesteps(cfg.batch_size, len(schedule), generator=generator).to(device)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        loss = diffusion_loss(model, x0, t, schedule, noise=noise, variance=variance)["mse"].mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if log is not None:
            log(step, losses[-1])
    model.eval()
    return losses


def adapt_in_place(
    model: nn.Module,
    images: Tensor,
    schedule: Schedule,
    cfg: AdaptConfig,
    *,
    variance: str = "fixed_small",
    generator: torch.Generator | None = None,
    log: Callable[[int, float], None] | None = None,
) -> nn.Module:
    """Add LoRA to ``model``, fine-tune it on ``images`` and merge the adapters; returns it.

    The adapters' random initialisation is drawn from ``generator`` too (the global RNG is left
    alone), so the same generator state gives the same adapted model.
    """
    with torch.random.fork_rng(devices=[]):
        if generator is not None:
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        add_lora(model, cfg)
    finetune(model, images, schedule, cfg, variance=variance, generator=generator, log=log)
    merge_lora(model)
    return model


def adapted_copy(
    model: nn.Module,
    images: Tensor,
    schedule: Schedule,
    cfg: AdaptConfig,
    *,
    variance: str = "fixed_small",
    generator: torch.Generator | None = None,
    log: Callable[[int, float], None] | None = None,
) -> nn.Module:
    """A LoRA-adapted copy of ``model`` (the original is left untouched).

    The adapters are merged into the base weights afterwards: the same function, sampled at the
    cost of the plain model.
    """
    return adapt_in_place(
        copy.deepcopy(model),
        images,
        schedule,
        cfg,
        variance=variance,
        generator=generator,
        log=log,
    )
