import sys
from pathlib import Path

import pytest
import torch

from diffrepro.limited_data_ft.base import tiny_base

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)


@pytest.fixture
def images():
    """Six 16x16 target images: coloured squares on white (seeded)."""
    gen = torch.Generator().manual_seed(3)
    out = torch.ones(6, 3, 16, 16)
    for i in range(6):
        y, x = 2 + i, 3 + (i % 3) * 2
        colour = torch.rand(3, generator=gen) * 2 - 1
        out[i, :, y : y + 7, x : x + 7] = colour[:, None, None]
    return out


@pytest.fixture(params=["tiny-adm", "tiny-unet2d"])
def base(request):
    return tiny_base(request.param)
