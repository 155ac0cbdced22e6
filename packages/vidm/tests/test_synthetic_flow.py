"""The sprite videos' ground-truth flow is exact, and the flow sources follow its convention."""

import pytest
import torch

from diffrepro.vidm.flow import BlockMatchingFlow, make_flow_source, warp
from diffrepro.vidm.synthetic import SyntheticConfig, SyntheticSprites

PHOTOS = [torch.rand(3, 80, 90, generator=torch.Generator().manual_seed(0)) * 2 - 1]


def dataset(**overrides) -> SyntheticSprites:
    cfg = SyntheticConfig(
        **{"size": 16, "frames": 6, "num_clips": 8, "sprite_size": (3, 5), **overrides}
    )
    return SyntheticSprites(cfg, photos=PHOTOS)


@pytest.mark.parametrize("index", range(8))
def test_flow_warps_first_frame_onto_every_frame_exactly_on_its_sprites(index):
    clip = dataset()[index]
    frames, flow, labels = clip["frames"], clip["flow"], clip["labels"]
    first = frames[:1].expand(len(frames), -1, -1, -1)
    warped = warp(first, flow)
    # sprite pixels of frame k whose source pixel in frame 0 shows the same sprite (not occluded)
    source = (
        warp(labels[:1, None].float().expand(len(frames), -1, -1, -1), flow)[:, 0].round().long()
    )
    visible = (labels > 0) & (source == labels)
    assert visible[1:].sum() > 0.8 * (labels[1:] > 0).sum()
    error = (warped - frames).abs().amax(1)
    assert error[visible].max() < 1e-5
    # the flow is zero on the background and at frame 0
    assert flow[0].abs().max() == 0
    assert torch.all(flow.permute(1, 0, 2, 3)[:, labels == 0] == 0)


def test_sprites_move_and_clips_are_deterministic_and_distinct():
    data = dataset()
    a, b = data[3], data[3]
    assert torch.equal(a["frames"], b["frames"])
    assert not torch.equal(data[3]["frames"], data[4]["frames"])
    assert a["flow"][1:].abs().amax() >= 1  # every sprite has a non-zero velocity
    assert a["frames"].shape == (6, 3, 16, 16) and a["frames"].abs().max() <= 1


def test_warp_by_zero_flow_is_identity_and_integer_shift_is_exact():
    image = torch.randn(2, 3, 8, 8)
    assert torch.allclose(warp(image, torch.zeros(2, 2, 8, 8)), image, atol=1e-6)
    shift = torch.zeros(2, 2, 8, 8)
    shift[:, 0] = 1  # later(p) = first(p + (1, 0))
    assert torch.allclose(warp(image, shift)[..., :-1], image[..., 1:], atol=1e-5)


def test_block_matching_recovers_the_ground_truth_flow_on_sprites():
    data, matcher = dataset(), BlockMatchingFlow(radius=8, window=5)
    hits = []
    for clip in data:
        frames, flow, labels = clip["frames"], clip["flow"], clip["labels"]
        estimate = matcher(frames[:1].expand(5, -1, -1, -1), frames[1:])
        exact = (estimate - flow[1:]).abs().amax(1) == 0
        hits.append(exact[labels[1:] > 0].float().mean())
    assert torch.stack(hits).mean() > 0.7


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="sprite_size"):
        SyntheticConfig(size=8, sprite_size=(3, 9))
    with pytest.raises(ValueError, match="unknown flow source"):
        make_flow_source("raft")
    with pytest.raises(ValueError, match="unknown flow source 'torchscript'"):
        make_flow_source("torchscript")  # never loaded: it would run code from the file
