"""EDICT's ``diffrepro.editing`` entry: registered, exact reconstruction, counted UNet calls."""

from importlib.metadata import entry_points

import torch

from diffrepro.core.compare import EditMethod
from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.edict.compare import edict_edit


def test_entry_point_registers_edict():
    (ep,) = [e for e in entry_points(group="diffrepro.editing") if e.name == "edict"]
    (method,) = ep.load()()
    assert isinstance(method, EditMethod) and method.name == "edict"


def test_edit_reconstructs_exactly_and_counts_coupled_steps():
    sd = tiny_stable_diffusion(seed=0, dtype=torch.float64)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    result = edict_edit(sd, image, "a cat", "a dog", seed=3, steps=5)
    # int(5 * 0.8) = 4 coupled steps, 2 guided eps calls (2 rows each) per step, both ways
    assert result.unet_evals == 4 * 2 * 2 * 2
    generator = torch.Generator().manual_seed(3)
    z0 = sd.encode_images(image, sample=True, generator=generator)
    with torch.no_grad():
        expected = sd.decode_latents(z0)
    torch.testing.assert_close(result.reconstruction, expected, atol=1e-8, rtol=0)
    assert not torch.allclose(result.edited, result.reconstruction)
