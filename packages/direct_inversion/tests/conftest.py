import pytest
import torch

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sd64():
    """The tiny random SD stack in float64 (SD 1.5 scheduler: leading grid, offset 1)."""
    return tiny_stable_diffusion(seed=0, dtype=torch.float64)


@pytest.fixture(scope="session")
def z0():
    """Unit-variance clean latents (two images), so relative errors are on a sensible scale."""
    return torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
