"""Pieces for fine-tuning a few parameters of a frozen Stable Diffusion bundle on a few images
(Textual Inversion, Imagic, SINE, per-concept fine-tuning baselines).

- :class:`ImageLatents`: the VAE posteriors (mean and std) of a small image set and of its
  horizontal mirror images, computed once; ``sample(index, flipped)`` draws
  ``mean + std * eps`` (what encoding every step with ``latent_dist.sample()`` gives, since the
  VAE is frozen), or the mean with ``sample=False``.
- :func:`denoising_loss`: the latent diffusion objective ``E ||target - model(z_t, t, c)||^2``
  (plain mean MSE, as the LDM / diffusers training scripts compute it) with ``t`` uniform over the
  training steps and the target (eps, v or x0) from the bundle's scheduler config.
- :func:`finetune_unet`: every UNet weight trained on such latents under one fixed prompt
  embedding with core ``train`` (Imagic's second stage, per-concept fine-tuning baselines).
- :func:`finetune_modules`: several modules (UNet and text encoder) trained together with any
  loss through core ``train`` (SINE's single-image fine-tuning).
- :func:`load_image_resized`: one image file, on white, resized to an exact size.
- :func:`single_image_train_config`: core ``train`` settings for fitting one image (batch 1,
  no EMA, one kept checkpoint); :func:`check_counts`: integer >= 1 config fields.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from diffrepro.core.losses import diffusion_loss
from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.train import TrainConfig, TrainResult, train


@dataclass(frozen=True)
class ImageLatents:
    """Posterior mean and std, shape (N, 2, C, h, w): index 1 of dim 1 is the mirrored image."""

    mean: Tensor
    std: Tensor

    @classmethod
    @torch.no_grad()
    def encode(cls, sd: StableDiffusion, images: Tensor) -> ImageLatents:
        """Encode images in [-1, 1] (N, 3, H, W) and their mirror images with the bundle's VAE
        (latents shifted and scaled like :meth:`StableDiffusion.encode_images`)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        both = torch.stack([images, images.flip(-1)], dim=1).flatten(0, 1)
        posterior = sd.vae.encode(both.to(sd.device, sd.dtype))
        scale, shift = sd.vae.config.scaling_factor, sd.vae.config.shift_factor or 0.0
        mean = ((posterior.mean - shift) * scale).unflatten(0, (len(images), 2))
        std = (posterior.std * scale).unflatten(0, (len(images), 2))
        return cls(mean, std)

    def __len__(self) -> int:
        return self.mean.shape[0]

    def sample(self, index: Tensor, flipped: Tensor, *, sample: bool = True) -> Tensor:
        """Latents of images ``index`` (B,), mirrored where ``flipped`` (B,) is true."""
        index = index.to(self.mean.device).long()
        side = flipped.to(self.mean.device).long()
        mean = self.mean[index, side]
        if not sample:
            return mean
        return mean + self.std[index, side] * torch.randn_like(mean)


def denoising_loss(
    sd: StableDiffusion,
    latents: Tensor,
    context: Tensor,
    *,
    t: Tensor | None = None,
    noise: Tensor | None = None,
) -> Tensor:
    """Mean MSE between the UNet's prediction on noised ``latents`` and its target."""
    if noise is None:
        noise = torch.randn_like(latents)
    if t is None:
        t = torch.randint(0, len(sd.schedule.timesteps), (latents.shape[0],))
    terms = diffusion_loss(
        sd.denoiser(context),
        latents,
        t.to(latents.device),
        sd.schedule,
        noise=noise,
        prediction=sd.scheduler.prediction,
    )
    return terms["mse"].mean()


def finetune_unet(
    sd: StableDiffusion,
    latents: ImageLatents,
    context: Tensor,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    flip_p: float = 0.5,
    resume: bool = True,
) -> TrainResult:
    """Fine-tune every UNet weight on ``latents`` with one fixed conditioning ``context``
    (1, L, D) through core :func:`~diffrepro.core.train.train` (Imagic's second stage; a
    per-concept fine-tuned model). The VAE and text encoder are not touched."""
    if context.ndim != 3 or context.shape[0] != 1:
        raise ValueError(f"context must be (1, L, D), got {tuple(context.shape)}")
    context = context.detach()

    def loss_fn(unet: torch.nn.Module, index: Tensor) -> Tensor:
        flipped = torch.rand(index.shape[0]) < flip_p
        z = latents.sample(index, flipped)
        ctx = context.expand(index.shape[0], -1, -1).to(z)
        return denoising_loss(sd, z, ctx)

    indices = [torch.tensor(i) for i in range(len(latents))]
    was_training = sd.unet.training
    sd.unet.requires_grad_(True)
    try:
        return train(sd.unet, loss_fn, indices, config, out_dir, resume=resume, device=sd.device)
    finally:
        sd.unet.train(was_training)


def finetune_modules(
    modules: dict[str, torch.nn.Module],
    loss_fn: Callable[[Tensor], Tensor],
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    num_items: int = 1,
    resume: bool = True,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train every weight of ``modules`` (e.g. a UNet and a text encoder, SINE's single-image
    fine-tuning) with ``loss_fn(index)`` (index: the micro-batch's item numbers in
    ``range(num_items)``) through core :func:`~diffrepro.core.train.train`, which re-seeds torch
    before every micro-batch. Checkpoints hold the modules under their names as key prefixes.
    Every other module stays as it is; train/eval modes are restored afterwards."""
    if not modules:
        raise ValueError("nothing to fine-tune: no modules given")
    bundle = torch.nn.ModuleDict(modules)
    modes = {name: m.training for name, m in modules.items()}
    bundle.requires_grad_(True)
    indices = [torch.tensor(i) for i in range(num_items)]
    try:
        return train(
            bundle, lambda _model, index: loss_fn(index), indices, config, out_dir,
            resume=resume, device=device,
        )  # fmt: skip
    finally:
        for name, module in modules.items():
            module.train(modes[name])


def load_image_resized(path: str | os.PathLike, height: int, width: int) -> Tensor:
    """One image file as (3, height, width) in [-1, 1]: transparency composited on white, then
    resized to exactly ``height`` x ``width`` (bicubic, aspect ratio not kept)."""
    from PIL import Image, UnidentifiedImageError

    from diffrepro.core.data import pil_to_tensor

    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    try:
        with Image.open(path) as img:
            rgba = img.convert("RGBA")
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    return pil_to_tensor(rgb.resize((width, height), Image.Resampling.BICUBIC))


def single_image_train_config(
    steps: int,
    lr: float,
    *,
    checkpoint_every: int,
    log_every: int,
    seed: int,
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
) -> TrainConfig:
    """Core ``train`` settings for fitting one image (Imagic's stages, SINE's fine-tuning):
    batch 1, no EMA, one kept checkpoint at most every ``checkpoint_every`` steps and at the
    end; ``weight_decay`` 0 and no clipping by default (plain Adam)."""
    return TrainConfig(
        steps=steps,
        batch_size=1,
        lr=lr,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        ema_decay=None,
        checkpoint_every=min(checkpoint_every, steps),
        keep_checkpoints=1,
        log_every=log_every,
        seed=seed,
    )


def check_counts(cfg: object, *names: str) -> None:
    """Each named field of a fine-tuning config must be an integer >= 1 (not a bool)."""
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
