"""Patch sampling for SINE's patch-based fine-tuning (the official ``SinImageHighResDataset``).

The source image is squashed to ``high_resolution`` px (aspect ratio not kept); a box of
``floor(S * u_y)`` x ``floor(S * u_x)`` latent pixels (``S = high_resolution / f``, ``u`` uniform
in [min_frac, max_frac] per side, at least 1) is placed uniformly; its pixels (box x f) are
resized (bicubic) to the training size, so crops are stretched anisotropically as in the
official code. With probability ``1 - crop_prob`` the whole image is used (box = full grid).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def sample_box(
    size: int, min_frac: float, max_frac: float, crop_prob: float = 1.0
) -> tuple[int, int, int, int]:
    """One box ``(y0, x0, y1, x1)`` in ``[0, size]`` from torch's global RNG (core ``train``
    seeds it per step)."""
    if float(torch.rand(())) >= crop_prob:
        return 0, 0, size, size
    u = min_frac + (max_frac - min_frac) * torch.rand(2)
    h, w = (max(1, math.floor(size * float(f))) for f in u)
    y0 = int(torch.randint(size - h + 1, ()))
    x0 = int(torch.randint(size - w + 1, ()))
    return y0, x0, y0 + h, x0 + w


def crop_pixels(image: Tensor, box: tuple[int, int, int, int], factor: int, out: int) -> Tensor:
    """The pixels of latent box ``box`` of ``image`` (3, H, W), resized to ``out`` x ``out``."""
    y0, x0, y1, x1 = (c * factor for c in box)
    crop = image[None, :, y0:y1, x0:x1]
    return F.interpolate(crop, size=(out, out), mode="bicubic", align_corners=False)[0].clamp(-1, 1)
