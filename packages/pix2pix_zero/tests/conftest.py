import pytest
import torch

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sd64():
    """The tiny random SD stack in float64 (8x8 latents, 8 attention layers)."""
    return tiny_stable_diffusion(seed=0, dtype=torch.float64)


@pytest.fixture(scope="session")
def x_t(sd64):
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
