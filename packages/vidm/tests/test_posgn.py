"""PosGN: reduces to GroupNorm, depends on the frame index, works for any batch and resolution."""

import pytest
import torch

from diffrepro.vidm.posgn import PosGN, normalised_index, spatial_coords, step_frame_coords


def coords(t, n, *, use_frame=True):
    return step_frame_coords(
        torch.tensor(t), torch.tensor(n), num_timesteps=1000, num_frames=16, use_frame=use_frame
    )


def test_zero_mlp_output_gives_plain_group_norm():
    torch.manual_seed(0)
    layer = PosGN(16, groups=4)
    torch.nn.init.normal_(layer.norm.weight)
    torch.nn.init.normal_(layer.norm.bias)
    torch.nn.init.zeros_(layer.coord_out.weight)
    torch.nn.init.zeros_(layer.coord_out.bias)
    plain = torch.nn.GroupNorm(4, 16)
    plain.load_state_dict(layer.norm.state_dict())
    x = torch.randn(3, 16, 5, 7)
    out = layer(x, coords([0, 500, 999], [1, 2, 15]))
    assert torch.allclose(out, plain(x), atol=1e-6)


def test_output_depends_on_frame_index_unless_the_frame_coordinate_is_off():
    torch.manual_seed(0)
    layer = PosGN(8, groups=2)
    x = torch.randn(1, 8, 4, 4).expand(2, -1, -1, -1)
    out = layer(x, coords([10, 10], [1, 9]))
    assert not torch.allclose(out[0], out[1], atol=1e-4)
    off = layer(x, coords([10, 10], [1, 9], use_frame=False))
    assert torch.equal(off[0], off[1])
    # and it depends on the pixel position: a constant input map is not mapped to a constant
    const = layer(torch.randn(1, 8, 1, 1).expand(1, 8, 4, 4), coords([10], [1]))
    assert const.std(dim=(2, 3)).min() > 1e-4


def test_any_batch_size_and_resolution_and_batch_independence():
    torch.manual_seed(0)
    layer = PosGN(8, groups=4)
    x = torch.randn(5, 8, 6, 6)
    c = coords([0, 3, 3, 999, 7], [1, 1, 4, 2, 15])
    full = layer(x, c)
    for i in range(5):  # each sample is unaffected by the others, whatever the batch size
        assert torch.allclose(layer(x[i : i + 1], c[i : i + 1]), full[i : i + 1], atol=1e-6)
    assert layer(torch.randn(2, 8, 3, 9), c[:2]).shape == (2, 8, 3, 9)
    with pytest.raises(ValueError, match="coords"):
        layer(x, c[:2])


def test_coordinate_normalisation_endpoints():
    assert normalised_index(torch.tensor([0, 999]), 1000).tolist() == [-1.0, 1.0]
    assert normalised_index(torch.tensor([0, 15]), 16).tolist() == [-1.0, 1.0]
    grid = spatial_coords(4, 3, torch.device("cpu")).reshape(4, 3, 2)
    assert grid[0, 0].tolist() == [-1.0, -1.0] and grid[-1, -1].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="count"):
        normalised_index(torch.tensor([0]), 1)


def test_channels_must_split_into_groups():
    with pytest.raises(ValueError, match="groups"):
        PosGN(10, groups=4)
