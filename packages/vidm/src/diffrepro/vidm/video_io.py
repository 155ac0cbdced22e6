"""Writing videos: an animated GIF (Pillow) and a frame grid PNG (one row per video)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] float images (..., 3, H, W) to uint8 (..., H, W, 3)."""
    return (
        ((images.detach().float().clamp(-1, 1) + 1) * 127.5)
        .round()
        .to(torch.uint8)
        .movedim(-3, -1)
        .cpu()
    )


def _check(videos: Tensor) -> None:
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(f"expected videos of shape (B, F, 3, H, W), got {tuple(videos.shape)}")


def tile_videos(videos: Tensor, pad: int = 1) -> Tensor:
    """(B, F, 3, H, W) to (F, 3, H, W'): the B videos side by side, ``pad`` white pixels apart."""
    _check(videos)
    count, frames, channels, height, width = videos.shape
    out = videos.new_ones(frames, channels, height, count * (width + pad) - pad)
    for i in range(count):
        out[..., i * (width + pad) : i * (width + pad) + width] = videos[i]
    return out


def save_gif(videos: Tensor, path: Path, *, fps: int = 4, scale: int = 1) -> Path:
    """An animated GIF of the videos side by side, looping forever."""
    frames = to_uint8(tile_videos(videos))
    images = [Image.fromarray(f.numpy()) for f in frames]
    if scale > 1:
        images = [im.resize((im.width * scale, im.height * scale), Image.NEAREST) for im in images]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def save_frame_grid(videos: Tensor, path: Path, *, pad: int = 1, scale: int = 1) -> Path:
    """A PNG with one row per video and one column per frame."""
    _check(videos)
    count, frames, channels, height, width = videos.shape
    grid = videos.new_ones(channels, count * (height + pad) - pad, frames * (width + pad) - pad)
    for i in range(count):
        for j in range(frames):
            grid[
                :,
                i * (height + pad) : i * (height + pad) + height,
                j * (width + pad) : j * (width + pad) + width,
            ] = videos[i, j]
    image = Image.fromarray(to_uint8(grid).numpy())
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
