"""Figures: the hole shrinking with the uncertainty map beside it, and a side-by-side grid.

For each example, two rows of tiles. Top: the masked input, x_1 … x_T (still-unknown pixels
grey), any extra results (e.g. the one-iteration output) and the ground truth. Bottom: the
uncertainty maps u_0 = 1 - m_0, u_1 … u_T (black = known, white = unknown, grey levels = the
predicted uncertainty of committed pixels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from diffrepro.core.data import to_pil
from diffrepro.sdm.decoding import Step


def _tile(image: torch.Tensor, scale: int) -> np.ndarray:
    """(C, H, W) in [-1, 1] (C = 3) or [0, 1] (C = 1) → an upscaled uint8 (H·s, W·s, 3) array."""
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1) * 2 - 1
    array = np.asarray(to_pil(image))
    return array.repeat(scale, axis=0).repeat(scale, axis=1)


def iteration_figure(
    image: torch.Tensor,
    mask0: torch.Tensor,
    steps: list[Step],
    path: Path,
    *,
    extra: tuple[torch.Tensor, ...] = (),
    scale: int = 4,
    gap: int = 2,
) -> Path:
    """Write the figure for every example in the batch to ``path`` (PNG)."""
    rows = []
    for b in range(len(image)):
        top = [image[b] * mask0[b], *(s.image[b] for s in steps), *(e[b] for e in extra), image[b]]
        bottom = [1 - mask0[b], *(s.uncertainty[b] for s in steps)]
        blank = np.full_like(_tile(image[b], scale), 255)
        top_tiles = [_tile(t, scale) for t in top]
        bottom_tiles = [_tile(t, scale) for t in bottom] + [blank] * (len(top) - len(bottom))
        for tiles in (top_tiles, bottom_tiles):
            spaced = [np.pad(t, ((0, gap), (0, gap), (0, 0)), constant_values=255) for t in tiles]
            rows.append(np.concatenate(spaced, axis=1))
        rows.append(np.full((3 * gap, rows[-1].shape[1], 3), 255, dtype=np.uint8))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path


def comparison_figure(
    columns: list[torch.Tensor], path: Path, *, scale: int = 4, gap: int = 2
) -> Path:
    """One row per example, one column per tensor (B, 3, H, W) of ``columns``, left to right."""
    rows = []
    for b in range(len(columns[0])):
        tiles = [_tile(column[b], scale) for column in columns]
        spaced = [np.pad(t, ((0, gap), (0, gap), (0, 0)), constant_values=255) for t in tiles]
        rows.append(np.concatenate(spaced, axis=1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path
