"""Frame-by-frame video generation (VIDM's autoregressive sampler).

Frame 0 is the given first frame, or a sample of the content generator. Frame n >= 1 is a full
reverse diffusion from fresh noise, conditioned on frame 0, on the flow from frame 0 to frame n-1
(estimated on the frames generated so far by the flow source) and on the frame index n.

Fix of the official generation script (documented in the README): the index given to the model
for frame n is n, as in training (target n, previous n-1), and it is normalised by the model's own
saved ``num_frames``; the official script started at index 0 for the first generated frame and
normalised by 64 frames a model trained with 128. ``official_indexing=True`` reproduces the first
half of that bug (index n-1) for checkpoints trained that way.

Video k depends only on ``seeds[k]`` (one generator per video), whatever the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from diffrepro.core.samplers import make_generators
from diffrepro.vidm.content import ContentUNet
from diffrepro.vidm.diffusion import DiffusionConfig, initial_noise, sample, sampling_schedule
from diffrepro.vidm.flow import FlowSource
from diffrepro.vidm.motion_unet import MotionUNet


@torch.no_grad()
def generate_first_frames(
    content: ContentUNet, seeds: Sequence[int], cfg: DiffusionConfig, *, truncation: float = 0.0
) -> Tensor:
    """First frames (B, 3, H, W) from the content generator, one per seed."""
    device = next(content.parameters()).device
    size = content.config.unet.image_size
    generators = make_generators(seeds)
    x_t = initial_noise(
        (len(seeds), content.config.unet.in_channels, size, size), generators, device, truncation
    )
    return sample(content, x_t, sampling_schedule(cfg), cfg, generators)


@torch.no_grad()
def generate_videos(
    motion: MotionUNet,
    first: Tensor,
    num_frames: int,
    seeds: Sequence[int],
    cfg: DiffusionConfig,
    flow_source: FlowSource,
    *,
    official_indexing: bool = False,
    condition: Tensor | None = None,
) -> Tensor:
    """Videos (B, num_frames, 3, H, W) whose frame 0 is ``first`` (B, 3, H, W).

    ``condition`` (default ``first``) is the first frame the network is given; a different one
    (e.g. another clip's: the shuffled-first-frame control) leaves the video's frame 0 and the
    flow, estimated from ``first`` to the previous frame, unchanged."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if len(seeds) != first.shape[0]:
        raise ValueError(f"got {len(seeds)} seeds for {first.shape[0]} first frames")
    condition = first if condition is None else condition
    if condition.shape != first.shape:
        raise ValueError(f"condition {tuple(condition.shape)} differs from first frames")
    schedule = sampling_schedule(cfg)
    generators = make_generators(seeds)
    frames = [first]
    for n in range(1, num_frames):
        flow = flow_source(first, frames[-1])
        index = torch.full(
            (first.shape[0],), n - 1 if official_indexing else n, device=first.device
        )

        def model(x: Tensor, t: Tensor, flow: Tensor = flow, index: Tensor = index) -> Tensor:
            return motion(x, t, index, condition, flow)

        x_t = initial_noise(first.shape, generators, first.device)
        frames.append(sample(model, x_t, schedule, cfg, generators))
    return torch.stack(frames, dim=1)
