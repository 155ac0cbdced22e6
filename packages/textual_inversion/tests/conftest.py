import pytest
import torch

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

torch.set_num_threads(1)


@pytest.fixture
def sd():
    return tiny_stable_diffusion(seed=0)


@pytest.fixture
def images():
    """Four 32x32 concept images: a red square on white at four positions (seeded)."""
    out = torch.ones(4, 3, 32, 32)
    for i in range(4):
        y, x = 4 + 3 * i, 6 + 2 * i
        out[i, :, y : y + 12, x : x + 12] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    return out


@pytest.fixture
def state_hashes():
    return _state_hashes


def _state_hashes(module):
    return {k: hash(v.detach().numpy().tobytes()) for k, v in module.state_dict().items()}
