"""Video folders, training pairs, and frame-by-frame generation (length, seeds, conditioning)."""

import dataclasses

import pytest
import torch
from PIL import Image

from diffrepro.vidm.config import preset
from diffrepro.vidm.content import ContentUNet
from diffrepro.vidm.diffusion import initial_noise
from diffrepro.vidm.flow import BlockMatchingFlow, warp
from diffrepro.vidm.generate import generate_first_frames, generate_videos
from diffrepro.vidm.motion_unet import MotionUNet
from diffrepro.vidm.pairs import hflip_flow, motion_batch
from diffrepro.vidm.synthetic import SyntheticConfig, SyntheticSprites
from diffrepro.vidm.video_folder import VideoFolder, export_frame_folders
from diffrepro.vidm.video_io import save_frame_grid, save_gif

TINY = preset("tiny")
PHOTOS = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1]


def clips(count=4, size=8, frames=4):
    data = SyntheticSprites(
        SyntheticConfig(size=size, frames=frames, num_clips=count, sprite_size=(2, 3)), PHOTOS
    )
    return (
        data,
        torch.stack([data[i]["frames"] for i in range(count)]),
        torch.stack([data[i]["flow"] for i in range(count)]),
    )


def perturbed(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_video_folder_reads_exported_frames_and_gifs(tmp_path):
    data, frames, _ = clips()
    export_frame_folders(data, tmp_path / "videos", 3)
    gif = [
        Image.fromarray(((f.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy())
        for f in frames[3]
    ]
    gif[0].save(tmp_path / "videos" / "clip.gif", save_all=True, append_images=gif[1:])
    folder = VideoFolder(tmp_path / "videos", size=8, frames=4)
    assert len(folder) == 4
    names = [v.name for v in folder.videos]
    assert names == ["clip.gif", "video00000", "video00001", "video00002"]
    for i in range(3):
        assert torch.allclose(folder[i + 1]["frames"], frames[i], atol=1 / 127)
    assert folder[0]["frames"].shape == (4, 3, 8, 8)  # GIF frames (palette-quantised)
    with pytest.raises(ValueError, match="at least 9 frames"):
        VideoFolder(tmp_path / "videos", size=8, frames=9)
    with pytest.raises(FileNotFoundError, match="video folder"):
        VideoFolder(tmp_path / "missing", size=8, frames=4)


def test_video_files_without_a_decoder_give_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "a.mp4").write_bytes(b"not a video")
    monkeypatch.setitem(__import__("sys").modules, "av", None)
    with pytest.raises(ValueError, match="PyAV"):
        VideoFolder(tmp_path, size=8, frames=2)[0]


def test_motion_pairs_use_frame_n_its_predecessor_and_the_flow_to_it():
    _, frames, flow = clips(count=6, frames=5)
    example = motion_batch(frames, flow, torch.Generator().manual_seed(0), hflip=False)
    assert example.index.min() >= 1 and example.index.max() <= 4
    for i, n in enumerate(example.index.tolist()):
        assert torch.equal(example.target[i], frames[i, n]) and torch.equal(
            example.first[i], frames[i, 0]
        )
        assert torch.equal(example.flow[i], flow[i, n - 1])
    upstream = motion_batch(
        frames.repeat(20, 1, 1, 1, 1), flow.repeat(20, 1, 1, 1, 1), upstream_range=True
    )
    assert upstream.index.max() <= 3


def test_flipped_flow_still_warps_the_flipped_first_frame_onto_the_flipped_frame():
    data, frames, flow = clips(count=1, size=12, frames=3)
    labels = data[0]["labels"]
    first, later, f = frames[0, :1].flip(-1), frames[0, 2:].flip(-1), hflip_flow(flow[0, 2:])
    visible = (labels[2] > 0) & (
        warp(labels[None, :1].float(), flow[0, 2:])[0, 0].round() == labels[2]
    )
    assert visible.any()
    error = (warp(first, f) - later).abs().amax(1)[0]
    assert error[visible.flip(-1)].max() < 1e-5


def test_generation_length_seed_determinism_and_first_frame_kept():
    torch.manual_seed(0)
    motion = perturbed(MotionUNet(TINY.motion))
    content = perturbed(ContentUNet(TINY.content))
    flow = BlockMatchingFlow(radius=2, window=3)
    first = generate_first_frames(content, [3, 4], TINY.diffusion)
    assert first.shape == (2, 3, 8, 8) and first.abs().max() <= 1
    videos = generate_videos(motion, first, 5, [3, 4], TINY.diffusion, flow)
    assert videos.shape == (2, 5, 3, 8, 8)
    assert torch.equal(videos[:, 0], first)
    again = generate_videos(motion, first, 5, [3, 4], TINY.diffusion, flow)
    assert torch.equal(videos, again)
    alone = generate_videos(motion, first[1:], 5, [4], TINY.diffusion, flow)
    assert torch.allclose(alone[0], videos[1], atol=1e-5)  # video k depends only on seed k
    other = generate_videos(motion, first, 5, [5, 6], TINY.diffusion, flow)
    assert not torch.allclose(other[:, 1:], videos[:, 1:])


def test_generation_calls_the_model_frames_times_steps_with_frame_indices():
    calls = []

    class Stub(torch.nn.Module):
        def forward(self, x, t, n, first, flow):
            calls.append((int(t[0]), int(n[0])))
            return torch.zeros(x.shape[0], 6, *x.shape[-2:])

    cfg = dataclasses.replace(TINY.diffusion, respacing="4")
    first = torch.zeros(1, 3, 8, 8)
    generate_videos(Stub(), first, 4, [0], cfg, lambda a, b: torch.zeros(1, 2, 8, 8))
    assert len(calls) == 3 * 4
    assert [n for _, n in calls] == [1] * 4 + [2] * 4 + [3] * 4
    assert [t for t, _ in calls[:4]] == [999, 666, 333, 0]
    calls.clear()
    generate_videos(
        Stub(), first, 3, [0], cfg, lambda a, b: torch.zeros(1, 2, 8, 8), official_indexing=True
    )
    assert sorted({n for _, n in calls}) == [0, 1]


def test_truncated_initial_noise_stays_in_range():
    noise = initial_noise(
        (4, 3, 8, 8), [torch.Generator().manual_seed(i) for i in range(4)], torch.device("cpu"), 0.5
    )
    assert noise.abs().max() <= 0.5 and noise.std() > 0.1


def test_gif_and_frame_grid(tmp_path):
    videos = torch.rand(2, 3, 3, 8, 8) * 2 - 1
    gif = Image.open(save_gif(videos, tmp_path / "v.gif"))
    assert gif.n_frames == 3 and gif.size == (17, 8)
    grid = Image.open(save_frame_grid(videos, tmp_path / "g.png"))
    assert grid.size == (26, 17)
    with pytest.raises(ValueError, match="B, F, 3"):
        save_gif(videos[0], tmp_path / "x.gif")


def test_fixed_variance_sampling_ignores_the_variance_head_and_bad_names_fail():
    torch.manual_seed(0)
    content = perturbed(ContentUNet(TINY.content))
    fixed = dataclasses.replace(TINY.diffusion, sampling_variance="fixed_small")
    a = generate_first_frames(content, [0], fixed)
    with torch.no_grad():
        content.unet.out[2].weight[3:].add_(5.0)  # change only the variance channels
        content.unet.out[2].bias[3:].add_(5.0)
    assert torch.equal(a, generate_first_frames(content, [0], fixed))
    assert not torch.equal(a, generate_first_frames(content, [0], TINY.diffusion))
    with pytest.raises(ValueError, match="sampling_variance"):
        dataclasses.replace(TINY.diffusion, sampling_variance="learned_small")
