"""Sketches made locally (spec §7.1): edge maps drawn as dark strokes on white.

- :func:`edge_sketch`: Canny (``skimage.feature.canny``) or a thresholded Sobel magnitude
  (``skimage.filters.sobel``) of any image, computed at ``scale`` × the output size and
  max-pooled down, so thin strokes survive at 32 px;
- :func:`emoji_sketches`: edge maps of the core's held-out emoji (never seen in training);
- :func:`photo_sketches`: edge maps of the photos inside the scikit-image wheel;
- :func:`load_sketch`: a user's PNG (any square size, resized to the model's).

Images are float tensors in [0, 1] (the MaskGIT pixel range), (3, H, W) or (B, 3, H, W).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from diffrepro.masksketch.config import SKETCH_METHODS

SOBEL_THRESHOLD = 0.2


def edge_map(image: torch.Tensor, method: str = "canny", sigma: float = 2.0) -> torch.Tensor:
    """Boolean edges (H, W) of one image (3, H, W) in [0, 1]."""
    from skimage.color import rgb2gray
    from skimage.feature import canny
    from skimage.filters import sobel

    if method not in SKETCH_METHODS:
        raise ValueError(f"sketch method must be canny or sobel, got {method!r}")
    grey = rgb2gray(image.detach().cpu().double().clamp(0, 1).permute(1, 2, 0).numpy())
    if method == "canny":
        edges = canny(grey, sigma=sigma)
    else:
        magnitude = sobel(grey)
        peak = float(magnitude.max())
        edges = magnitude > SOBEL_THRESHOLD * peak if peak > 0 else np.zeros_like(grey, bool)
    return torch.from_numpy(np.ascontiguousarray(edges))


def edge_sketch(
    images: torch.Tensor, size: int, method: str = "canny", sigma: float = 2.0
) -> torch.Tensor:
    """Sketches (B, 3, size, size) in [0, 1]: black strokes where ``images`` (B, 3, H, W) have
    edges, white elsewhere; H must be a multiple of ``size`` (edges are max-pooled down)."""
    if images.dim() != 4 or images.shape[-1] % size or images.shape[-2] % size:
        raise ValueError(
            f"images must be (B, 3, H, W) with H, W multiples of {size}, got {tuple(images.shape)}"
        )
    edges = torch.stack([edge_map(x, method, sigma) for x in images])[:, None].float()
    edges = F.max_pool2d(edges, images.shape[-1] // size)
    return (1.0 - edges).expand(-1, 3, -1, -1).contiguous()


def emoji_sketches(
    size: int, method: str = "canny", scale: int = 4, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sketches, images, alpha masks, coarse labels) of the held-out emoji at ``size`` px."""
    from diffrepro.core import emoji

    big, _ = emoji.images(size * scale, "heldout")
    rgb, alpha = emoji.images(size, "heldout")
    labels = torch.tensor([e.label for e in emoji.select("heldout")])
    n = len(labels) if limit is None else limit
    sketches = edge_sketch((big[:n] + 1) / 2, size, method)
    return sketches, (rgb[:n] + 1) / 2, alpha[:n], labels[:n]


def photo_sketches(size: int, method: str = "canny", scale: int = 4) -> torch.Tensor:
    """Edge-map "pseudo-sketches" of the scikit-image sample photos (B, 3, size, size)."""
    from diffrepro.core.data import sample_photos

    photos = sample_photos(size * scale)
    return edge_sketch((photos + 1) / 2, size, method)


def load_sketch(path: str | os.PathLike, size: int) -> torch.Tensor:
    """A user's sketch file as (1, 3, size, size) in [0, 1]; it must be square."""
    from diffrepro.core.data import load_image

    image = load_image(Path(path))
    h, w = image.shape[1:]
    if h != w:
        raise ValueError(f"sketch {path} is {w}×{h}; it must be square (resized to {size}×{size})")
    image = (image[None] + 1) / 2
    if h != size:
        image = F.interpolate(image, size=(size, size), mode="area" if h > size else "bilinear")
    return image.clamp(0, 1)
