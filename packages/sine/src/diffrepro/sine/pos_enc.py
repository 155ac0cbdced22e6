"""SINE's fixed 2-D sinusoidal positional encoding (spec §3.2), no learnable parameters.

Per axis ``d = C0 / 2`` channels (``C0`` = the UNet's base width), frequencies
``w_k = 10000 ** (-k / (d/2 - 1))`` for ``k < d/2`` and positions ``p = 1..S``:
``PE(p) = [sin(p w_0) .. sin(p w_{d/2-1}), cos(p w_0) .. cos(p w_{d/2-1})]``. The grid
``G`` (C0, S, S) holds the column's PE in channels ``[0, d)`` (varying along the width) and the
row's PE in ``[d, 2d)``. A crop box ``(y0, x0, y1, x1)`` (latent pixels of the high-resolution
image, 0..S) selects ``G[:, y0:y1, x0:x1]``, resized to the current latent size (bilinear with
``align_corners=True``, or nearest); no box means the whole grid, so every output size maps
onto the same normalised frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MODES = ("bilinear", "nearest")


def sinusoid(positions: Tensor, dim: int) -> Tensor:
    """(len(positions), dim) encodings of float positions; ``dim`` must be even and >= 4."""
    if dim % 2 or dim < 4:
        raise ValueError(f"the per-axis width must be even and at least 4, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / (half - 1))
    angles = positions.double()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def position_grid(channels: int, size: int) -> Tensor:
    """The grid ``G`` (channels, size, size); ``channels`` must be divisible by 4."""
    if channels % 4:
        raise ValueError(f"the UNet's base width must be divisible by 4, got {channels}")
    if size < 1:
        raise ValueError(f"the grid size must be positive, got {size}")
    d = channels // 2
    pe = sinusoid(torch.arange(1, size + 1), d)  # (S, d)
    cols = pe.T[:, None, :].expand(d, size, size)  # varies along the width
    rows = pe.T[:, :, None].expand(d, size, size)  # varies along the height
    return torch.cat([cols, rows]).contiguous()


def crop_features(
    grid: Tensor, boxes: Tensor | None, size: tuple[int, int], mode: str = "bilinear"
) -> Tensor:
    """(B, C, h, w) features of each box (B, 4) = (y0, x0, y1, x1), or (1, C, h, w) of the whole
    grid when ``boxes`` is None."""
    if mode not in MODES:
        raise ValueError(f"interpolation must be one of {MODES}, got {mode!r}")
    if boxes is None:
        crops = [grid]
    else:
        crops = [grid[:, y0:y1, x0:x1] for y0, x0, y1, x1 in _check_boxes(boxes, grid.shape[-1])]
    kwargs = {"align_corners": True} if mode == "bilinear" else {}
    return torch.cat([F.interpolate(c[None], size=size, mode=mode, **kwargs) for c in crops])


def _check_boxes(boxes: Tensor, size: int) -> list[list[int]]:
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"crop boxes must be (B, 4), got {tuple(boxes.shape)}")
    out = boxes.long().tolist()
    for y0, x0, y1, x1 in out:
        if not (0 <= y0 < y1 <= size and 0 <= x0 < x1 <= size):
            raise ValueError(f"crop box {(y0, x0, y1, x1)} is not inside the {size}x{size} grid")
    return out
