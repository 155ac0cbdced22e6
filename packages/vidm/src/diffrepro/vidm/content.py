"""The content generator (the official ``ConstantUModel``): an unconditional image DDPM for the
first frame whose input is the noisy image concatenated with one learned constant image.

    eps, v = UNet([x_t ; c], t),    c in R^{3 x H x W} (one learnable tensor, N(0, 1) init)

This learned constant is the only "sampling space truncation" mechanism in the released code;
a truncated initial noise (``truncation`` in the generation config) is an unverified option.
The UNet is the core ADM UNet with its ordinary sinusoidal timestep embedding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from diffrepro.core.models.unet import UNetConfig, UNetModel


@dataclass(frozen=True)
class ContentNetConfig:
    unet: UNetConfig = field(
        default_factory=lambda: UNetConfig(
            image_size=128,
            model_channels=128,
            channel_mult=(1, 1, 2, 2, 4, 4),
            num_res_blocks=2,
            attention_resolutions=(8,),
            num_head_channels=64,
            resblock_updown=True,
            learn_sigma=True,
        )
    )
    constant_input: bool = True


class ContentUNet(nn.Module):
    def __init__(self, config: ContentNetConfig) -> None:
        super().__init__()
        channels = config.unet.in_channels if config.constant_input else 0
        self.config = config
        self.unet = UNetModel(dataclasses.replace(config.unet, cond_channels=channels))
        size = config.unet.image_size
        self.constant = (
            nn.Parameter(torch.randn(channels, size, size)) if config.constant_input else None
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if self.constant is None:
            return self.unet(x, t)
        if x.shape[-2:] != self.constant.shape[-2:]:
            raise ValueError(
                f"content UNet was built for {tuple(self.constant.shape[-2:])} images, "
                f"got {tuple(x.shape[-2:])}"
            )
        return self.unet(x, t, cond=self.constant.expand(x.shape[0], -1, -1, -1))
