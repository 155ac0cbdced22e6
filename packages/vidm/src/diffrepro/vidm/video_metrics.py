"""Video metrics for the emoji sprite domain (local, CPU scale; none of them is FVD).

- :func:`sprite_centroids`: where the sprite is in every frame of videos over a plain background
  (background = median of the frame's border pixels; foreground weight = distance to it, soft-
  thresholded); :func:`trajectory_error`: mean distance in pixels between the centroids of
  generated and true frames n >= 1, and the same on the per-frame displacement (velocity).
- :func:`video_features` / :func:`video_fd_proxy`: an **FVD-style proxy** — the Fréchet distance
  between Gaussian fits of per-video features made of a local image network's features (the zoo's
  emoji judge in the demo, a seeded random conv net in tests) averaged over the frames, the mean
  absolute change of those features between consecutive frames, and the mean absolute pixel
  change between consecutive frames. It is *not* FVD (no I3D network, no Kinetics statistics,
  a few dozen videos) and is comparable only with itself: always read it beside the same proxy
  between two independent sets of real videos (its small-sample floor).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from diffrepro.core.metrics import frechet_distance, gaussian_fit

FeatureFn = Callable[[Tensor], Tensor]


def _check(videos: Tensor) -> None:
    if videos.ndim != 5 or videos.shape[1] < 2:
        raise ValueError(f"expected videos (B, F >= 2, C, H, W), got {tuple(videos.shape)}")


def border_background(frames: Tensor) -> Tensor:
    """(N, C) median colour of each frame's one-pixel border, frames (N, C, H, W)."""
    border = torch.cat(
        [frames[..., 0, :], frames[..., -1, :], frames[..., 1:-1, 0], frames[..., 1:-1, -1]],
        dim=-1,
    )
    return border.median(dim=-1).values


def sprite_centroids(videos: Tensor, threshold: float = 0.3) -> Tensor:
    """(B, F, 2) centroid (y, x) in pixels of what differs from each frame's background: weight
    ``min(1, |x - bg|_1 / (3 threshold))``; a frame with no foreground gets the frame centre."""
    _check(videos)
    batch, count, channels, height, width = videos.shape
    frames = videos.reshape(-1, channels, height, width).float()
    background = border_background(frames)[..., None, None]
    weight = ((frames - background).abs().sum(1) / (channels * threshold)).clamp(0, 1)
    ys = torch.arange(height, dtype=weight.dtype)[:, None].expand(height, width)
    xs = torch.arange(width, dtype=weight.dtype)[None, :].expand(height, width)
    mass = weight.sum(dim=(1, 2))
    centre = torch.tensor([(height - 1) / 2, (width - 1) / 2])
    y = (weight * ys).sum(dim=(1, 2)) / mass.clamp_min(1e-6)
    x = (weight * xs).sum(dim=(1, 2)) / mass.clamp_min(1e-6)
    points = torch.stack([y, x], dim=-1)
    points = torch.where((mass > 1e-3)[:, None], points, centre)
    return points.reshape(batch, count, 2)


def trajectory_error(videos: Tensor, truth: Tensor) -> dict[str, float]:
    """Mean centroid distance (pixels) over frames n >= 1 and videos ("position"), and the same
    for the frame-to-frame displacement ("velocity"), both measured by :func:`sprite_centroids`."""
    if videos.shape != truth.shape:
        raise ValueError(f"videos {tuple(videos.shape)} and truth {tuple(truth.shape)} differ")
    ours, true = sprite_centroids(videos), sprite_centroids(truth)
    position = (ours - true)[:, 1:].norm(dim=-1).mean()
    velocity = (ours.diff(dim=1) - true.diff(dim=1)).norm(dim=-1).mean()
    return {"position": float(position), "velocity": float(velocity)}


@torch.no_grad()
def video_features(videos: Tensor, features: FeatureFn) -> Tensor:
    """(B, 2D + F - 1) per-video features: mean over frames of ``features(frame)`` (D), mean
    absolute change of them between consecutive frames (D), and the mean absolute pixel change
    between each pair of consecutive frames (F - 1)."""
    _check(videos)
    batch, count = videos.shape[:2]
    per_frame = features(videos.flatten(0, 1).float()).reshape(batch, count, -1).double()
    pixel_change = (videos.diff(dim=1).abs().mean(dim=(2, 3, 4))).double()
    return torch.cat([per_frame.mean(1), per_frame.diff(dim=1).abs().mean(1), pixel_change], dim=1)


def video_fd_proxy(videos_a: Tensor, videos_b: Tensor, features: FeatureFn) -> float:
    """Fréchet distance between Gaussian fits of :func:`video_features` of two video sets (an
    FVD-style proxy in a local feature space, never FVD)."""
    fit_a = gaussian_fit(video_features(videos_a, features))
    fit_b = gaussian_fit(video_features(videos_b, features))
    value = frechet_distance(*fit_a, *fit_b)
    if not math.isfinite(value):
        raise FloatingPointError("the video FD proxy is not finite")
    return value
