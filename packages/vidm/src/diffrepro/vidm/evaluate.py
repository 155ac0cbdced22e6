"""Video metrics of the CPU-scale reproduction (not FVD: see the README's statement of scale).

- ``per_frame_mse(videos, reference)``: mean squared error of every frame against the ground-truth
  continuation, (F,) averaged over the videos (frame 0 is the shared first frame).
- ``temporal_change(videos)``: mean absolute change between consecutive frames, (F-1,); a video
  that flickers changes more than the ground truth, a frozen one less. Reported beside the
  ground truth's own value, the consistency measure is the gap between the two.
"""

from __future__ import annotations

from torch import Tensor


def _check(videos: Tensor) -> None:
    if videos.ndim != 5:
        raise ValueError(f"expected videos (B, F, C, H, W), got {tuple(videos.shape)}")


def per_frame_mse(videos: Tensor, reference: Tensor) -> Tensor:
    _check(videos)
    if videos.shape != reference.shape:
        raise ValueError(
            f"videos {tuple(videos.shape)} and reference {tuple(reference.shape)} differ in shape"
        )
    return ((videos - reference) ** 2).mean(dim=(0, 2, 3, 4))


def temporal_change(videos: Tensor) -> Tensor:
    _check(videos)
    return (videos[:, 1:] - videos[:, :-1]).abs().mean(dim=(0, 2, 3, 4))
