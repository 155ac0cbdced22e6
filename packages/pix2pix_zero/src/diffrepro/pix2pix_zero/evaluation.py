"""CPU-scale stand-ins for the paper's metrics (spec §4), named for what they are:

- edit accuracy under the judge (the CLIP-Acc analogue): the share of edits the judge scores
  higher for the target class than for the source class;
- structure distance: the self-similarity distance of Tumanyan et al. (Splice) computed in the
  judge's spatial features instead of DINO-ViT keys — the mean squared difference of the cosine
  self-similarity matrices of the input's and the edit's feature tokens;
- background distance: the mean absolute pixel difference outside the emoji's alpha mask (the
  paper uses LPIPS outside Detic masks).
"""

from __future__ import annotations

import math

from torch import Tensor


def self_similarity(features: Tensor) -> Tensor:
    """(B, C, H, W) features → (B, HW, HW) cosine similarities between spatial tokens."""
    if features.dim() != 4:
        raise ValueError(f"expected (B, C, H, W) features, got {tuple(features.shape)}")
    tokens = features.flatten(2).transpose(1, 2)
    tokens = tokens / tokens.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return tokens @ tokens.transpose(1, 2)


def structure_distance(features_a: Tensor, features_b: Tensor) -> Tensor:
    """Per-sample mean squared difference of the self-similarity matrices."""
    return ((self_similarity(features_a) - self_similarity(features_b)) ** 2).mean((1, 2))


def background_distance(x: Tensor, y: Tensor, alpha: Tensor) -> Tensor:
    """Per-sample mean |x − y| over pixels whose alpha is below 0.5 (images (B, 3, H, W))."""
    background = (alpha < 0.5).to(x.dtype).expand_as(x)
    count = background.sum((1, 2, 3))
    if (count == 0).any():
        raise ValueError("an image has no background pixels outside its alpha mask")
    return ((x - y).abs() * background).sum((1, 2, 3)) / count


def edit_accuracy(source_scores: Tensor, target_scores: Tensor) -> float:
    """The share of samples scored higher for the target than for the source."""
    return float((target_scores > source_scores).double().mean())


def finite(name: str, value: float) -> float:
    """A metric value, or one clear error when it is not finite (never a table row)."""
    if not math.isfinite(value):
        raise ValueError(f"metric {name} is not finite ({value})")
    return value
