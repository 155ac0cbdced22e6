"""Direct Inversion's ``diffrepro.editing`` entry: registered, seeded, counted UNet calls."""

from importlib.metadata import entry_points

import torch

from diffrepro.core.compare import EditMethod
from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.direct_inversion.compare import direct_inversion_edit


def test_entry_point_registers_direct_inversion():
    (ep,) = [e for e in entry_points(group="diffrepro.editing") if e.name == "direct_inversion"]
    (method,) = ep.load()()
    assert isinstance(method, EditMethod) and method.name == "direct_inversion"


def test_edit_counts_inversion_and_guided_steps_and_follows_the_seed():
    sd = tiny_stable_diffusion(seed=0)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    a = direct_inversion_edit(sd, image, "a cat", "a dog", seed=0, steps=4)
    assert a.unet_evals == 4 + 2 * 4  # unguided inversion, guided editing
    b = direct_inversion_edit(sd, image, "a cat", "a dog", seed=0, steps=4)
    torch.testing.assert_close(a.edited, b.edited)
    c = direct_inversion_edit(sd, image, "a cat", "a dog", seed=1, steps=4)
    assert not torch.allclose(a.edited, c.edited)  # the seed draws the VAE posterior sample
    assert a.reconstruction.shape == image.shape
