"""Training examples: first frames for the content generator, (first, previous, target, flow, n)
tuples for the motion generator (teacher forcing: the previous frame is the ground truth)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffrepro.vidm.flow import FlowSource


@dataclass(frozen=True)
class MotionExample:
    first: Tensor  # (B, 3, H, W) frame 0
    target: Tensor  # (B, 3, H, W) frame n
    flow: Tensor  # (B, 2, H, W) flow from frame 0 to frame n - 1
    index: Tensor  # (B,) n


def hflip_flow(flow: Tensor) -> Tensor:
    """The flow of horizontally flipped frames: mirror the field and negate dx."""
    flipped = flow.flip(-1)
    return torch.cat([-flipped[:, :1], flipped[:, 1:]], dim=1)


def _flip_mask(batch: int, generator: torch.Generator | None, enabled: bool) -> Tensor:
    if not enabled:
        return torch.zeros(batch, dtype=torch.bool)
    return torch.rand(batch, generator=generator) < 0.5


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.to(a.device)[:, None, None, None], a, b)


def content_batch(
    frames: Tensor, generator: torch.Generator | None = None, *, hflip: bool = True
) -> Tensor:
    """Frame 0 of each clip (B, F, 3, H, W), randomly flipped."""
    first = frames[:, 0]
    return _where(_flip_mask(len(first), generator, hflip), first.flip(-1), first)


def motion_batch(
    frames: Tensor,
    flow: Tensor | None = None,
    generator: torch.Generator | None = None,
    *,
    flow_source: FlowSource | None = None,
    upstream_range: bool = False,
    hflip: bool = True,
) -> MotionExample:
    """One training example per clip: n uniform in {1, ..., F-1} (``upstream_range``: the official
    ``randint(1, F-1)``, which never trains the last frame), the previous frame n - 1, frame 0,
    and the flow 0 -> n-1 (ground truth when ``flow`` (B, F, 2, H, W) is given, else estimated by
    ``flow_source``). A horizontal flip is applied to all of them alike."""
    batch, count = frames.shape[:2]
    high = count - 1 if upstream_range else count
    if high <= 1:
        raise ValueError(
            f"motion training needs clips of at least {3 if upstream_range else 2} frames, "
            f"got {count}"
        )
    n = torch.randint(1, high, (batch,), generator=generator)
    rows = torch.arange(batch)
    first, previous, target = frames[:, 0], frames[rows, n - 1], frames[rows, n]
    if flow is not None:
        cue = flow[rows, n - 1]
    elif flow_source is not None:
        cue = flow_source(first, previous)
    else:
        raise ValueError("motion_batch needs ground-truth flow or a flow source")
    flip = _flip_mask(batch, generator, hflip)
    return MotionExample(
        first=_where(flip, first.flip(-1), first),
        target=_where(flip, target.flip(-1), target),
        flow=_where(flip, hflip_flow(cue), cue),
        index=n.to(frames.device),
    )
