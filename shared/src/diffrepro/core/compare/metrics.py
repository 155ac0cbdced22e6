"""Per-edit measures (images (1, 3, H, W) in [-1, 1]; every number is checked finite).

- ``recon_mse``: mean squared error of the reconstruction with the source prompt against the
  source image (pixels in [-1, 1]; EDICT Table 1's measure, in pixels rather than latents).
- ``success``: 1 when the target emoji is in the judge's top-``k`` for the edited image;
  ``target_prob``: the judge's softmax probability of the target (the alignment axis).
- ``dist_in`` / ``dist_out``: mean squared pixel change from the source inside / outside the
  object's mask (mask-weighted means; pix2pix-zero's background distance, in pixels, not LPIPS).
- ``structure``: mean squared difference of the cosine self-similarity matrices of 4x4 pixel
  patches of the source and the edit (the structure distance of Tumanyan et al. with pixel
  patches in place of DINO-ViT keys: layout, not appearance).
- ``judge_dist``: 1 - cosine of the judge's identity embeddings of source and edit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

PATCH = 4
TOP_K = 5


def masked_mse(a: Tensor, b: Tensor, weight: Tensor) -> float | None:
    """Mean over pixels of (a - b)^2 weighted by ``weight`` (None when the weight is ~0)."""
    total = float(weight.sum()) * a.shape[1]
    if total < 1e-6:
        return None
    return float(((a - b).double() ** 2 * weight.double()).sum() / total)


def self_similarity(x: Tensor, patch: int = PATCH) -> Tensor:
    """(B, N, N) cosine similarities of the non-overlapping ``patch`` x ``patch`` patches."""
    cols = F.unfold(x.double(), kernel_size=patch, stride=patch)  # (B, 3 p^2, N)
    cols = cols - cols.mean(dim=1, keepdim=True)
    cols = F.normalize(cols, dim=1, eps=1e-8)
    return cols.transpose(1, 2) @ cols


def structure_distance(a: Tensor, b: Tensor, patch: int = PATCH) -> float:
    return float(((self_similarity(a, patch) - self_similarity(b, patch)) ** 2).mean())


@torch.no_grad()
def judge_scores(judge, source: Tensor, edited: Tensor, target: int | None, k: int = TOP_K):
    """(success, target_prob, judge_dist); the first two are None without a target."""
    dist = 1.0 - float((judge.embed(source) * judge.embed(edited)).sum())
    if target is None:
        return None, None, dist
    logits = judge.identity_logits(edited)[0]
    success = float(target in logits.topk(k).indices.tolist())
    return success, float(logits.softmax(-1)[target]), dist


def edit_metrics(judge, source: Tensor, mask: Tensor | None, result, target: int | None) -> dict:
    """Every measure of one edit (see the module docstring); None = not applicable."""
    edited = result.edited.detach().float().clamp(-1, 1).cpu()
    source = source.float().cpu()
    recon = result.reconstruction
    success, prob, dist = judge_scores(judge, source, edited, target)
    values = {
        "recon_mse": None
        if recon is None
        else float(((recon.detach().float().clamp(-1, 1).cpu() - source) ** 2).mean()),
        "success": success,
        "target_prob": prob,
        "dist_in": None if mask is None else masked_mse(edited, source, mask.cpu()),
        "dist_out": None if mask is None else masked_mse(edited, source, 1 - mask.cpu()),
        "structure": structure_distance(edited, source),
        "judge_dist": dist,
    }
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise FloatingPointError(f"the {name} of this edit is not finite ({value})")
    return values
