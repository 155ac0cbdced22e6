"""The emoji sprite videos: exact flow, bouncing constant-velocity trajectories, determinism."""

import dataclasses

import pytest
import torch

from diffrepro.vidm.config import DataConfig, preset
from diffrepro.vidm.emoji_sprites import EmojiSprites, EmojiSpritesConfig, sprite_image
from diffrepro.vidm.flow import warp
from diffrepro.vidm.synthetic import _bounce
from diffrepro.vidm.training import make_dataset

CFG = EmojiSpritesConfig(size=16, frames=8, num_clips=6, sprite_size=10, max_speed=2)


@pytest.mark.parametrize("index", range(6))
def test_flow_warps_the_first_frame_onto_every_frame_exactly_on_the_sprite(index):
    clip = EmojiSprites(CFG)[index]
    frames, flow, labels = clip["frames"], clip["flow"], clip["labels"]
    warped = warp(frames[:1].expand(len(frames), -1, -1, -1), flow)
    on = labels > 0
    assert on[1:].sum() > 0.1 * on[1:].numel()  # the sprite covers part of every frame
    assert (warped - frames).abs().amax(1)[on].max() < 1e-5
    assert flow[0].abs().max() == 0 and torch.all(flow.permute(1, 0, 2, 3)[:, ~on] == 0)


@pytest.mark.parametrize("index", range(6))
def test_the_sprite_moves_with_constant_velocity_and_bounces_off_the_walls(index):
    data = EmojiSprites(CFG)
    clip = data[index]
    positions = clip["positions"]
    span = CFG.size - CFG.sprite_size
    step = positions[1] - positions[0]  # frame 0 -> 1 is the velocity unless a wall is hit
    gen = torch.Generator().manual_seed(CFG.seed * 1_000_003 + index)  # replay the draws
    draws = [
        int(torch.randint(lo, hi + 1, (1,), generator=gen))
        for lo, hi in (
            (0, len(CFG.vocabulary) - 1),
            (0, len(CFG.backgrounds) - 1),
            (0, span),
            (0, span),
        )
    ]
    velocity = (0, 0)
    while velocity == (0, 0):
        velocity = tuple(int(torch.randint(-2, 3, (1,), generator=gen)) for _ in range(2))
    assert clip["emoji"] == draws[0] and clip["background"] == draws[1]
    assert positions[0].tolist() == draws[2:]
    for k in range(CFG.frames):
        expected = [_bounce(p + v * k, span) for p, v in zip(draws[2:], velocity)]
        assert positions[k].tolist() == expected
    assert (positions.diff(dim=0).abs() <= 2).all() and step.abs().sum() > 0 or span == 0
    # the frame is the background with the alpha-composited emoji at that position
    rgb, alpha = sprite_image(CFG.vocabulary[draws[0]], CFG.sprite_size)
    background = torch.tensor(CFG.backgrounds[draws[1]]).view(3, 1, 1)
    y, x = positions[3].tolist()
    window = clip["frames"][3][:, y : y + 10, x : x + 10]
    torch.testing.assert_close(window, alpha * rgb + (1 - alpha) * background)
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[y : y + 10, x : x + 10] = False
    assert torch.all(clip["frames"][3][:, outside] == background.view(3, 1))


def test_clips_are_deterministic_distinct_and_seeded():
    a, b = EmojiSprites(CFG), EmojiSprites(CFG)
    assert torch.equal(a[2]["frames"], b[2]["frames"])
    assert not torch.equal(a[2]["frames"], a[3]["frames"])
    other = EmojiSprites(dataclasses.replace(CFG, seed=1))
    assert not torch.equal(a[2]["frames"], other[2]["frames"])
    assert a[0]["frames"].shape == (8, 3, 16, 16) and a[0]["frames"].abs().max() <= 1
    rgb, alpha = sprite_image("red apple", 10)
    assert rgb.shape == (3, 10, 10) and 0.2 < (alpha > 0.5).float().mean() < 1


def test_the_presets_train_on_emoji_sprites_and_bad_settings_are_errors():
    data = make_dataset(preset("demo"))
    assert isinstance(data, EmojiSprites) and data.cfg.size == 16 and data.cfg.sprite_size == 10
    assert make_dataset(preset("tiny")).cfg.sprite_size == 5
    assert len(DataConfig(image_size=16, num_emoji=4).generated().vocabulary) == 4
    with pytest.raises(ValueError, match="domain"):
        DataConfig(domain="audio")
    with pytest.raises(ValueError, match="num_emoji"):
        DataConfig(num_emoji=13)
    with pytest.raises(ValueError, match="sprite_size"):
        EmojiSpritesConfig(size=8, sprite_size=8)
    with pytest.raises(ValueError, match="frames"):
        EmojiSpritesConfig(frames=1)


def test_the_demo_trains_on_the_flow_estimator_it_generates_with():
    cfg = preset("demo")
    assert cfg.flow.training == cfg.flow.generation == "block_matching"
    assert preset("tiny").flow.training == "ground_truth"
