import pytest
import torch

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

torch.set_num_threads(1)


@pytest.fixture
def sd():
    return tiny_stable_diffusion(seed=0)


@pytest.fixture
def image():
    """A 32x32 red square on white (3, 32, 32) in [-1, 1]."""
    out = torch.ones(3, 32, 32)
    out[:, 8:24, 10:26] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    return out


@pytest.fixture
def state_hashes():
    return _state_hashes


def _state_hashes(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(before, module):
    after = module.state_dict()
    return set(before) == set(after) and all(torch.equal(before[k], after[k]) for k in before)
