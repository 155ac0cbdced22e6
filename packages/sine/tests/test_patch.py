import math

import pytest
import torch
import torch.nn.functional as F

from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.sine.crops import crop_pixels, sample_box
from diffrepro.sine.patch_unet import PatchUNet, patch_unet_from
from diffrepro.sine.pos_enc import crop_features, position_grid, sinusoid


def test_sinusoid_matches_the_formula():
    d = 8
    got = sinusoid(torch.arange(1, 4), d)
    for p in (1, 2, 3):
        for k in range(d // 2):
            w = 10000 ** (-k / (d // 2 - 1))
            assert got[p - 1, k] == pytest.approx(math.sin(p * w), abs=1e-6)
            assert got[p - 1, d // 2 + k] == pytest.approx(math.cos(p * w), abs=1e-6)
    with pytest.raises(ValueError, match="even"):
        sinusoid(torch.arange(3), 6 + 1)


def test_grid_shape_range_and_axes():
    grid = position_grid(16, 10)
    assert grid.shape == (16, 10, 10)
    assert grid.abs().max() <= 1.0
    cols, rows = grid[:8], grid[8:]
    assert torch.equal(cols, cols[:, :1, :].expand_as(cols))  # constant down each column
    assert torch.equal(rows, rows[:, :, :1].expand_as(rows))  # constant along each row
    assert torch.allclose(cols[:, 0, :], rows[:, :, 0])  # same encoding of the same index
    assert torch.allclose(cols[:, 0, 0], sinusoid(torch.tensor([1]), 8)[0])  # positions 1..S
    with pytest.raises(ValueError, match="divisible by 4"):
        position_grid(18, 4)


def test_full_box_at_grid_size_is_the_identity():
    grid = position_grid(16, 12)
    full = torch.tensor([[0, 0, 12, 12]])
    assert torch.allclose(crop_features(grid, full, (12, 12))[0], grid, atol=1e-6)
    assert torch.allclose(crop_features(grid, None, (12, 12))[0], grid, atol=1e-6)


def test_box_equals_slicing_then_resizing():
    grid = position_grid(16, 12)
    box = torch.tensor([[2, 3, 9, 7]])
    got = crop_features(grid, box, (5, 6))
    ref = F.interpolate(grid[None, :, 2:9, 3:7], size=(5, 6), mode="bilinear", align_corners=True)
    assert torch.allclose(got, ref)
    other = crop_features(grid, torch.tensor([[0, 0, 7, 4]]), (5, 6))
    assert not torch.allclose(got, other)
    near = crop_features(grid, box, (5, 6), mode="nearest")
    assert near.shape == got.shape
    with pytest.raises(ValueError, match="inside"):
        crop_features(grid, torch.tensor([[0, 0, 13, 4]]), (4, 4))


def test_plain_weights_load_strictly_and_zero_positions_give_the_plain_unet(sd):
    plain = sd.unet
    patch = PatchUNet(plain.config, init_size=16)
    assert set(patch.state_dict()) == set(plain.state_dict())
    patch.load_state_dict(plain.state_dict(), strict=True)
    x, ctx = torch.randn(2, 4, 8, 8), sd.encode_prompt(["a cat", "a dog"])
    t = torch.tensor([10, 900])
    with torch.no_grad():
        zero = UNet2DConditionModel.forward(patch, x, t, ctx, torch.zeros(1, 16, 8, 8))
        assert torch.equal(zero, plain(x, t, ctx))
        assert not torch.allclose(patch(x, t, ctx), plain(x, t, ctx), atol=1e-4)


def test_patch_unet_runs_on_non_square_latents(sd):
    patch = patch_unet_from(sd.unet, 16)
    x = torch.randn(1, 4, 8, 12)
    ctx = sd.encode_prompt("a cat")
    with torch.no_grad():
        out = patch(x, torch.tensor([500]), ctx)
    assert out.shape == x.shape
    assert patch.positions((8, 12)).shape == (1, 16, 8, 12)
    boxes = torch.tensor([[0, 0, 8, 8], [4, 4, 16, 16]])
    with torch.no_grad():
        two = patch(torch.randn(2, 4, 8, 8), torch.tensor([500]), ctx.expand(2, -1, -1), boxes)
    assert two.shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match="crop boxes"):
        patch(torch.randn(3, 4, 8, 8), torch.tensor([500]), ctx.expand(3, -1, -1), boxes)


def test_crop_boxes_respect_the_fractions():
    torch.manual_seed(0)
    size = 16
    for _ in range(200):
        y0, x0, y1, x1 = sample_box(size, 0.25, 0.75)
        assert 0 <= y0 < y1 <= size and 0 <= x0 < x1 <= size
        assert math.floor(size * 0.25) <= y1 - y0 <= math.floor(size * 0.75)
        assert math.floor(size * 0.25) <= x1 - x0 <= math.floor(size * 0.75)
    assert sample_box(size, 0.1, 1.0, crop_prob=0.0) == (0, 0, size, size)
    image = torch.rand(3, 64, 64) * 2 - 1
    crop = crop_pixels(image, (2, 4, 10, 8), 4, 32)
    assert crop.shape == (3, 32, 32)
    assert torch.allclose(crop_pixels(image, (0, 0, 16, 16), 4, 64), image.clamp(-1, 1), atol=1e-5)


def test_crop_sides_are_floor_of_size_times_the_drawn_fractions():
    for seed in range(20):
        torch.manual_seed(seed)
        y0, x0, y1, x1 = sample_box(10, 0.1, 1.0)
        torch.manual_seed(seed)
        torch.rand(())  # the crop-or-not draw
        u = 0.1 + 0.9 * torch.rand(2)
        assert (y1 - y0, x1 - x0) == tuple(max(1, math.floor(10 * float(f))) for f in u)
