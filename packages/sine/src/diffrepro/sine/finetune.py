"""SINE's single-image fine-tuning (spec §3.1-3.2) through core
:func:`~diffrepro.core.finetune.finetune_modules`: the UNet and (by default) the text encoder
trained with the eps loss under the identifier caption ("photo of a sks dog"); the VAE frozen.

Without patches each step encodes the image with a fresh posterior draw (the LDM code encodes
every step). With patches the UNet is a :class:`~.patch_unet.PatchUNet`, each step draws a crop
box of the high-resolution image (:mod:`.crops`), encodes the resized crop and tells the UNet
its box; the loss adds ``scale_recon_loss * (t/T)^2 * |mean(x0_hat) - mean(z0)|`` (the LDM patch
config's term with ``avgpool`` over the whole latent, i.e. per-channel spatial means).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from diffrepro.core.finetune import ImageLatents, finetune_modules, single_image_train_config
from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.train import TrainConfig, TrainResult

from .config import SineConfig
from .crops import crop_pixels, sample_box
from .patch_unet import PatchUNet, patch_unet_from


def train_config(cfg: SineConfig, seed: int) -> TrainConfig:
    return single_image_train_config(
        cfg.train_steps, cfg.lr, weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip,
        checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, seed=seed,
    )  # fmt: skip


def sine_loss(
    sd: StableDiffusion,
    z0: Tensor,
    context: Tensor,
    t: Tensor,
    noise: Tensor,
    *,
    crop_boxes: Tensor | None = None,
    recon_weight: float = 0.0,
) -> Tensor:
    """Mean eps-MSE (+ the weighted x0 term) of the UNet on ``z0`` noised at ``t``."""
    schedule = sd.schedule
    z_t = schedule.q_sample(z0, t, noise)
    timesteps = torch.tensor(schedule.timesteps, device=z0.device)[t]
    if crop_boxes is None:
        eps = sd.unet(z_t, timesteps, context)
    else:
        eps = sd.unet(z_t, timesteps, context, crop_boxes=crop_boxes)
    loss = ((eps - noise) ** 2).mean()
    if recon_weight == 0:
        return loss
    abar = torch.tensor(schedule.alphas_cumprod, device=z0.device)[t].to(z0.dtype)
    abar = abar.view(-1, 1, 1, 1)
    x0_hat = (z_t - (1 - abar).sqrt() * eps) / abar.sqrt()
    gap = (x0_hat.mean(dim=(2, 3)) - z0.mean(dim=(2, 3))).abs().mean(dim=1)
    weight = (t.to(z0.dtype) / len(schedule.timesteps)) ** 2
    return loss + recon_weight * (weight * gap).mean()


def prepare_patch_unet(sd: StableDiffusion, cfg: SineConfig) -> None:
    """Swap ``sd.unet`` for a patch UNet with the same weights (grid = high-res latent side)."""
    factor = sd.vae.downscale_factor
    if cfg.high_resolution % factor:
        raise ValueError(
            f"high_resolution {cfg.high_resolution} is not a multiple of the VAE's {factor}"
        )
    if not isinstance(sd.unet, PatchUNet):
        sd.unet = patch_unet_from(sd.unet, cfg.high_resolution // factor, cfg.interpolation)


def finetune(
    sd: StableDiffusion,
    image: Tensor,
    class_word: str,
    cfg: SineConfig,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
) -> TrainResult:
    """Fine-tune ``sd`` in place on ``image`` (3, H, W) in [-1, 1] at any size (resized here)."""
    if sd.scheduler.prediction != "eps":
        raise ValueError("SINE fine-tuning supports eps-prediction models (SD 1.x) only")
    caption = cfg.caption.format(class_word)
    ids = sd.tokenizer([caption]).to(sd.device)
    modules = {"unet": sd.unet}
    if cfg.train_text_encoder:
        modules["text_encoder"] = sd.text_encoder
    else:
        sd.text_encoder.requires_grad_(False)
    sd.vae.requires_grad_(False)
    if cfg.patch:
        prepare_patch_unet(sd, cfg)
        modules["unet"] = sd.unet
        loss_fn = _patch_loss(sd, image, ids, cfg)
    else:
        loss_fn = _plain_loss(sd, image, ids, cfg)
    modules["unet"].enable_gradient_checkpointing(cfg.gradient_checkpointing)
    result = finetune_modules(modules, loss_fn, train_config(cfg, seed), out_dir, device=sd.device)
    sd.unet.eval()
    sd.text_encoder.eval()
    return result


def _resize(image: Tensor, size: int) -> Tensor:
    if tuple(image.shape[-2:]) == (size, size):
        return image
    resized = torch.nn.functional.interpolate(image[None], size=(size, size), mode="bicubic")
    return resized[0].clamp(-1, 1)


def _plain_loss(sd: StableDiffusion, image: Tensor, ids: Tensor, cfg: SineConfig):
    latents = ImageLatents.encode(sd, _resize(image, cfg.resolution)[None])

    def loss_fn(index: Tensor) -> Tensor:
        z0 = latents.sample(index, torch.zeros_like(index, dtype=torch.bool))
        t = torch.randint(0, len(sd.schedule.timesteps), (len(z0),), device=z0.device)
        context = sd.text_encoder(ids).to(sd.dtype)
        return sine_loss(sd, z0, context, t, torch.randn_like(z0))

    return loss_fn


def _patch_loss(sd: StableDiffusion, image: Tensor, ids: Tensor, cfg: SineConfig):
    high = _resize(image, cfg.high_resolution)
    factor = sd.vae.downscale_factor
    size = cfg.high_resolution // factor

    def loss_fn(index: Tensor) -> Tensor:
        box = sample_box(size, cfg.min_crop_frac, cfg.max_crop_frac, cfg.crop_prob)
        crop = crop_pixels(high, box, factor, cfg.resolution)
        with torch.no_grad():
            z0 = sd.encode_images(crop[None], sample=True)
        t = torch.randint(0, len(sd.schedule.timesteps), (1,), device=z0.device)
        context = sd.text_encoder(ids).to(sd.dtype)
        boxes = torch.tensor([box])
        return sine_loss(
            sd, z0, context, t, torch.randn_like(z0), crop_boxes=boxes,
            recon_weight=cfg.recon_weight,
        )  # fmt: skip

    return loss_fn
