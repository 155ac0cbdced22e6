"""The patch UNet: SD's UNet with SINE's positional encoding added after ``conv_in``.

``PatchUNet(config, init_size)`` has exactly the plain UNet's parameters (the grid is a
non-persistent buffer), so plain SD-layout weights load into it with ``strict=True``
(:func:`patch_unet_from`) and its saved ``unet/`` folder is an ordinary diffusers UNet; the
patch settings travel beside it (``sine.json``). ``forward(x, t, context, crop_boxes=None)``:
during patch fine-tuning each sample's crop box; at inference none (the whole grid).
"""

from __future__ import annotations

from torch import Tensor

from diffrepro.core.models.sd_unet import UNet2DConditionConfig, UNet2DConditionModel

from .pos_enc import crop_features, position_grid


class PatchUNet(UNet2DConditionModel):
    def __init__(
        self, config: UNet2DConditionConfig, init_size: int, interpolation: str = "bilinear"
    ) -> None:
        super().__init__(config)
        grid = position_grid(config.block_out_channels[0], init_size)
        self.register_buffer("position_grid", grid, persistent=False)
        self.init_size, self.interpolation = init_size, interpolation
        crop_features(grid, None, (1, 1), interpolation)  # checks the mode

    def positions(self, size: tuple[int, int], crop_boxes: Tensor | None = None) -> Tensor:
        return crop_features(self.position_grid, crop_boxes, size, self.interpolation)

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | float | int,
        encoder_hidden_states: Tensor,
        crop_boxes: Tensor | None = None,
    ) -> Tensor:
        if crop_boxes is not None and len(crop_boxes) != sample.shape[0]:
            raise ValueError(f"{len(crop_boxes)} crop boxes for a batch of {sample.shape[0]}")
        features = self.positions(tuple(sample.shape[-2:]), crop_boxes)
        return super().forward(sample, timestep, encoder_hidden_states, features)


def patch_unet_from(
    unet: UNet2DConditionModel, init_size: int, interpolation: str = "bilinear"
) -> PatchUNet:
    """A :class:`PatchUNet` holding a copy of ``unet``'s weights (loaded strictly)."""
    weight = unet.conv_in.weight
    patch = PatchUNet(unet.config, init_size, interpolation).to(weight.device, weight.dtype)
    patch.load_state_dict(unet.state_dict(), strict=True)
    return patch.train(unet.training)
