"""The premise check (spec §7.2.1): is the attention structure shared by an image and its own
sketch more than by an image and another image's sketch?

For images x_i and sketches e_j (all under image i's class token), D[l, i, j] is the
image-level structure distance of layer l. Matched pairs are i = j; :func:`auroc` of -D tells
them from the unmatched ones (0.5 = chance, 1 = always closer to its own sketch).
"""

from __future__ import annotations

import torch

from diffrepro.masksketch.attention import log_attention
from diffrepro.masksketch.structure import layer_distances


def auroc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(a positive scores above a negative), ties counting one half (Mann-Whitney U)."""
    if positive.numel() == 0 or negative.numel() == 0:
        raise ValueError("AUROC needs at least one positive and one negative score")
    p, n = positive.double().flatten()[:, None], negative.double().flatten()[None, :]
    return float(((p > n).double() + 0.5 * (p == n).double()).mean())


@torch.no_grad()
def pair_distances(
    model, images: torch.Tensor, sketches: torch.Tensor, layers: tuple[int, ...], mode: str
) -> torch.Tensor:
    """D (|layers|, B, B): distance of image sequence i to sketch sequence j, both (B, L)
    complete token sequences with the same class token per row i (the sketch's class token is
    replaced by image i's)."""
    target = log_attention(model, images, layers)
    rows = []
    for i in range(len(images)):
        others = sketches.clone()
        others[:, 0] = images[i, 0]
        pred = log_attention(model, others, layers)
        d = layer_distances(target[i : i + 1].expand_as(pred), pred, mode)
        rows.append(d[..., 1:].mean(-1))  # (B_j, |layers|): image positions only
    return torch.stack(rows).permute(2, 0, 1)  # (|layers|, B_i, B_j)


def layer_auroc(distances: torch.Tensor) -> list[float]:
    """AUROC per layer of -D for matched (diagonal) vs unmatched pairs; D (|layers|, B, B)."""
    b = distances.shape[-1]
    eye = torch.eye(b, dtype=torch.bool)
    return [auroc(-d[eye], -d[~eye]) for d in distances]
