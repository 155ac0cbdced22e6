"""Optical flow: the warp convention, and the pluggable flow sources of the motion generator.

Convention (used by the synthetic data, every flow source and the motion generator): a flow
``f`` of shape (B, 2, H, W), channels (dx, dy) in pixels, defined on the grid of the *later*
frame, warps the first frame onto it by backward sampling::

    later(p) = first(p + f(p))            i.e.  warp(first, f) ≈ later

A flow source is any callable ``source(first, later) -> flow`` with images in [-1, 1]:

- :class:`BlockMatchingFlow`: a parameter-free integer block matcher (adequate for the sprite
  videos; real videos want a learned network such as the official SPyNet, which is not offered:
  a TorchScript export would run code from the user's file, and no weights-only SPyNet exists
  here yet);
- ground-truth flow is not a callable: the synthetic dataset returns it with every clip, and
  training uses it directly (``motion.flow_source = "ground_truth"``).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class FlowSource(Protocol):
    def __call__(self, first: Tensor, later: Tensor) -> Tensor: ...


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``image`` (B, C, H, W) by ``flow`` (B, 2, H, W) in pixels (bilinear)."""
    _, _, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=image.device, dtype=image.dtype),
        torch.arange(width, device=image.device, dtype=image.dtype),
        indexing="ij",
    )
    x = (xs + flow[:, 0]) * (2 / max(width - 1, 1)) - 1
    y = (ys + flow[:, 1]) * (2 / max(height - 1, 1)) - 1
    grid = torch.stack([x, y], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class BlockMatchingFlow:
    """Integer flow by exhaustive block matching: for each pixel of ``later`` the displacement
    ``d`` (|dx|, |dy| <= radius) minimising the windowed squared difference between
    ``later(p)`` and ``first(p + d)``, with a small penalty on |d| so that flat regions get 0."""

    def __init__(self, radius: int = 8, window: int = 5, penalty: float = 1e-3) -> None:
        if radius < 0 or window < 1 or window % 2 == 0:
            raise ValueError("BlockMatchingFlow needs radius >= 0 and an odd window >= 1")
        self.radius, self.window, self.penalty = radius, window, penalty

    @torch.no_grad()
    def __call__(self, first: Tensor, later: Tensor) -> Tensor:
        r = self.radius
        padded = F.pad(first, (r, r, r, r), mode="replicate")
        height, width = first.shape[-2:]
        best_cost = torch.full_like(first[:, 0], float("inf"))
        best = torch.zeros(first.shape[0], 2, height, width, device=first.device, dtype=first.dtype)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                shifted = padded[:, :, r + dy : r + dy + height, r + dx : r + dx + width]
                cost = _box_filter(((later - shifted) ** 2).sum(1), self.window)
                cost = cost + self.penalty * (dx * dx + dy * dy)
                better = cost < best_cost
                best_cost = torch.where(better, cost, best_cost)
                best[:, 0] = torch.where(better, torch.full_like(cost, dx), best[:, 0])
                best[:, 1] = torch.where(better, torch.full_like(cost, dy), best[:, 1])
        return best


def _box_filter(x: Tensor, window: int) -> Tensor:
    pad = window // 2
    x = F.pad(x[:, None], (pad, pad, pad, pad), mode="replicate")
    return F.avg_pool2d(x, window, stride=1)[:, 0]


def make_flow_source(name: str, *, radius: int = 8) -> FlowSource:
    """The flow source called ``name``: only "block_matching" is a callable source."""
    if name == "block_matching":
        return BlockMatchingFlow(radius=radius)
    raise ValueError(f"unknown flow source {name!r}; expected 'block_matching'")
