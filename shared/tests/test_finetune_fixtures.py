"""core.finetune_fixtures: the shared pieces of the Imagic / SINE test suites."""

import numpy as np
import torch
from PIL import Image

from diffrepro.core.finetune_fixtures import red_square, same_state, state_copy, write_rgba_image


def test_red_square_on_white():
    image = red_square()
    assert image.shape == (3, 32, 32)
    assert torch.equal(image[:, 8:24, 10:26], torch.tensor([1.0, -1.0, -1.0])[:, None, None]
                       .expand(3, 16, 16))  # fmt: skip
    mask = torch.ones(32, 32, dtype=torch.bool)
    mask[8:24, 10:26] = False
    assert (image[:, mask] == 1).all()


def test_same_state_sees_one_changed_value_and_a_missing_key():
    net = torch.nn.Linear(3, 2)
    before = state_copy(net)
    assert same_state(before, net)
    with torch.no_grad():
        net.weight[0, 0] += 1e-6
    assert not same_state(before, net)
    restored = torch.nn.Linear(3, 2)
    restored.load_state_dict(before)
    assert same_state(before, restored)
    assert not same_state({"weight": before["weight"]}, restored)
    before["weight"].zero_()  # a copy: changing it does not reach the module
    assert restored.weight.abs().sum() > 0


def test_write_rgba_image(tmp_path):
    path = write_rgba_image(tmp_path / "in.png", size=(40, 36))
    with Image.open(path) as im:
        assert im.mode == "RGBA" and im.size == (40, 36)
        px = np.asarray(im)
    assert (px[:4, :, 3] == 0).all() and (px[4:, :, 3] == 255).all()
    assert (px[8:24, 6:22, :3] == (200, 30, 40)).all()
    assert (px[30:, :, :3] == 255).all() and (px[4:8, :, :3] == 255).all()
