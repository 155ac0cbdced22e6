"""pix2pix-zero's ``diffrepro.editing`` entry: registered, seeded, the reference pass kept."""

from importlib.metadata import entry_points

import pytest
import torch

from diffrepro.core.compare import EditMethod
from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.pix2pix_zero.compare import pix2pix_zero_edit


def test_entry_point_registers_pix2pix_zero():
    (ep,) = [e for e in entry_points(group="diffrepro.editing") if e.name == "pix2pix_zero"]
    (method,) = ep.load()()
    assert isinstance(method, EditMethod) and method.name == "pix2pix_zero"


def test_edit_is_seeded_and_needs_a_word_swap():
    sd = tiny_stable_diffusion(seed=0)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    a = pix2pix_zero_edit(sd, image, "a photo of a cat", "a photo of a dog", seed=0, steps=3)
    b = pix2pix_zero_edit(sd, image, "a photo of a cat", "a photo of a dog", seed=0, steps=3)
    torch.testing.assert_close(a.edited, b.edited)
    assert a.unet_evals >= 3 + 2 * 3 + 2 * 3  # inversion, reference pass, edit pass
    assert not torch.allclose(a.edited, a.reconstruction)
    with pytest.raises(ValueError, match="do not swap"):
        pix2pix_zero_edit(sd, image, "a cat", "a cat", seed=0, steps=3)
