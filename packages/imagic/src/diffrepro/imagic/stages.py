"""Imagic's three stages (spec §3) on a :class:`StableDiffusion` bundle.

- :func:`image_latents`: the image's VAE latent, drawn once (``sample_once``, as the diffusers
  community pipeline and Pinkney's notebook do), its posterior mean, or a fresh posterior draw
  every step; never mirrored (Imagic fits one image as it is).
- :func:`optimize_embedding` (stage A): ``e_opt = argmin_e L(x, e, theta)`` from ``e = e_tgt``
  (the whole text-encoder output sequence), every network weight frozen; Adam (core ``train``'s
  AdamW with weight decay 0), one random ``t`` and fresh noise per step.
- :func:`finetune` (stage B): every UNet weight trained on ``L(x, e_opt, theta)`` with ``e_opt``
  frozen (core :func:`~diffrepro.core.finetune.finetune_unet`); VAE and text encoder untouched.
- :func:`interpolate` (stage C): ``eta * e_tgt + (1 - eta) * e_opt``, exact at both ends.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from diffrepro.core.finetune import (
    ImageLatents,
    denoising_loss,
    finetune_unet,
    single_image_train_config,
)
from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.train import TrainConfig, TrainResult, train, unwrap

from .config import ImagicConfig


def image_latents(sd: StableDiffusion, image: Tensor, mode: str, seed: int) -> ImageLatents:
    """The latents stages A and B fit, for one image (3, H, W) in [-1, 1]."""
    posterior = ImageLatents.encode(sd, image[None])
    mean, std = posterior.mean[:, :1], posterior.std[:, :1]  # the unmirrored image only
    if mode == "sample_each_step":
        return ImageLatents(mean.repeat(1, 2, 1, 1, 1), std.repeat(1, 2, 1, 1, 1))
    if mode == "sample_once":
        g = torch.Generator(device="cpu").manual_seed(seed)
        mean = mean + std * torch.randn(mean.shape, generator=g).to(mean)
    elif mode != "mean":
        raise ValueError(f"unknown latents mode {mode!r}")
    fixed = mean.repeat(1, 2, 1, 1, 1)
    return ImageLatents(fixed, torch.zeros_like(fixed))


def train_config(steps: int, lr: float, cfg: ImagicConfig, seed: int) -> TrainConfig:
    """Batch 1, plain Adam (no weight decay, no clipping, no EMA), as the reference code."""
    return single_image_train_config(
        steps, lr, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, seed=seed
    )


class Embedding(nn.Module):
    """The one trainable tensor of stage A: a copy of the target embedding (1, L, D)."""

    def __init__(self, e_tgt: Tensor) -> None:
        super().__init__()
        self.e = nn.Parameter(e_tgt.detach().clone())


def optimize_embedding(
    sd: StableDiffusion,
    latents: ImageLatents,
    e_tgt: Tensor,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
) -> tuple[Tensor, TrainResult]:
    """Stage A: optimise a copy of ``e_tgt`` (never modified) with every network frozen."""
    _check_embedding(e_tgt)
    holder = Embedding(e_tgt)
    networks = (sd.unet, sd.vae, sd.text_encoder)
    flags = [[p.requires_grad for p in net.parameters()] for net in networks]
    for net in networks:
        net.requires_grad_(False)

    def loss_fn(model: nn.Module, index: Tensor) -> Tensor:
        z = latents.sample(index, torch.zeros_like(index, dtype=torch.bool))
        e = unwrap(model).e
        return denoising_loss(sd, z, e.expand(len(z), -1, -1).to(z))

    indices = [torch.tensor(0)]
    try:
        result = train(
            holder, loss_fn, indices, config, Path(out_dir), resume=resume, device=sd.device,
            desc="stage A",
        )  # fmt: skip
    finally:
        for net, saved in zip(networks, flags):
            for p, flag in zip(net.parameters(), saved):
                p.requires_grad_(flag)
    return holder.e.detach().clone(), result


def finetune(
    sd: StableDiffusion,
    latents: ImageLatents,
    e_opt: Tensor,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
) -> TrainResult:
    """Stage B: fine-tune every UNet weight with ``e_opt`` (not modified) as the condition."""
    _check_embedding(e_opt)
    result = finetune_unet(sd, latents, e_opt, config, out_dir, flip_p=0.0, resume=resume)
    sd.unet.eval()
    return result


def interpolate(e_tgt: Tensor, e_opt: Tensor, eta: float) -> Tensor:
    """Stage C's ``eta * e_tgt + (1 - eta) * e_opt``: ``e_opt`` at 0 and ``e_tgt`` at 1 exactly;
    ``eta`` outside [0, 1] extrapolates (the community pipeline's default is 1.2)."""
    if e_tgt.shape != e_opt.shape:
        raise ValueError(
            f"embeddings differ in shape: {tuple(e_tgt.shape)} vs {tuple(e_opt.shape)}"
        )
    if not math.isfinite(eta):
        raise ValueError(f"eta must be finite, got {eta}")
    return eta * e_tgt + (1.0 - eta) * e_opt


def reconstruction_loss(
    sd: StableDiffusion, z: Tensor, e: Tensor, t: Tensor, noise: Tensor
) -> float:
    """``L(x, e, theta)`` on a fixed set of (t, eps) pairs (len(t) noised copies of ``z``)."""
    with torch.no_grad():
        zs = z.expand(len(t), -1, -1, -1)
        return float(denoising_loss(sd, zs, e.expand(len(t), -1, -1), t=t, noise=noise))


def _check_embedding(e: Tensor) -> None:
    if e.ndim != 3 or e.shape[0] != 1:
        raise ValueError(f"an embedding must be (1, L, D), got {tuple(e.shape)}")
    if not torch.isfinite(e).all():
        raise FloatingPointError("the embedding has non-finite values")
