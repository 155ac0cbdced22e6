"""Reading the image to edit: RGB in [-1, 1], shorter side resized, centre-cropped square."""

from __future__ import annotations

import torch

from diffrepro.core.data import center_crop, resize_shorter
from diffrepro.core.models.stable_diffusion import StableDiffusion


def native_size(sd: StableDiffusion) -> int:
    """The model's image size: UNet sample size (its height, if a pair) × the VAE factor."""
    size = sd.unet.config.sample_size or 64
    return (size[0] if isinstance(size, tuple) else size) * sd.vae.downscale_factor


def check_size(sd: StableDiffusion, size: int) -> None:
    """The size must survive the VAE and every UNet downsampling exactly."""
    factor = sd.vae.downscale_factor * 2 ** (len(sd.unet.config.block_out_channels) - 1)
    if size < 1 or size % factor:
        raise ValueError(f"image_size must be a positive multiple of {factor}, got {size}")


def to_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) -> (3, size, size): shorter side resized to ``size``, then centre-cropped."""
    return center_crop(resize_shorter(image, size), size)
