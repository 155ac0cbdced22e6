"""Helpers shared by the tests (``ldft_helpers``: conftest puts this folder on sys.path)."""

import torch

from diffrepro.core.models.sd_unet import UNet2DConditionConfig, UNet2DConditionModel


def randomise(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Every all-zero parameter gets small random values (zero-initialised layers)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return module


def tiny_sd_unet(seed: int = 0, linear: bool = False) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    cfg = UNet2DConditionConfig(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=12,
        attention_head_dim=2,
        use_linear_projection=linear,
    )
    return randomise(UNet2DConditionModel(cfg), seed).eval()


def model_inputs(unet, seed=0, batch=2):
    """(args, kwargs) for one forward of any supported UNet."""
    gen = torch.Generator().manual_seed(seed)
    cfg = unet.config
    if isinstance(unet, UNet2DConditionModel):
        x = torch.randn(batch, cfg.in_channels, 8, 8, generator=gen)
        ctx = torch.randn(batch, 5, 12, generator=gen)
        return (x, torch.tensor([3, 800][:batch]), ctx), {}
    x = torch.randn(batch, cfg.in_channels, 16, 16, generator=gen)
    t = torch.tensor([3, 800][:batch])
    if getattr(cfg, "num_classes", None):
        return (x, t, torch.tensor([0, 2][:batch])), {}
    return (x, t), {}
