"""The structure distance between the attention maps of a sketch and a sample (spec §3.3).

Per layer l, head h and query token i, with a = A_i(x) and b = A_i(ŷ) two attention rows:

- ``sym_kl``: D = KL(a‖b) + KL(b‖a) = Σ_j (a_j - b_j)(log a_j - log b_j)  (the paper's wording);
- ``sym_ce``: D = -Σ_j (a_j log b_j + b_j log a_j) = sym_kl + H(a) + H(b)  (the official code,
  whose similarity S_i is exactly -D).

D is averaged over the heads, then over the layers (as the code: mean over axis H, then L), and
the per-token similarity S = -D is min-max rescaled to [0, 1] over the sequence positions.
"""

from __future__ import annotations

import torch

RESCALE_EPS = 1e-12


def row_distance(log_a: torch.Tensor, log_b: torch.Tensor, mode: str = "sym_ce") -> torch.Tensor:
    """D per attention row: inputs (..., L) log-probabilities, output (...)."""
    a, b = log_a.exp(), log_b.exp()
    if mode == "sym_ce":
        return -(a * log_b).sum(-1) - (b * log_a).sum(-1)
    if mode == "sym_kl":
        return ((a - b) * (log_a - log_b)).sum(-1)
    raise ValueError(f"structure mode must be sym_ce or sym_kl, got {mode!r}")


def layer_distances(target: torch.Tensor, pred: torch.Tensor, mode: str = "sym_ce") -> torch.Tensor:
    """Per-layer token distance (B, |layers|, L): the head mean of :func:`row_distance` of
    log-attention stacks (B, |layers|, H, L, L)."""
    if target.shape != pred.shape:
        raise ValueError(
            f"attention stacks differ in shape: {tuple(target.shape)} vs {tuple(pred.shape)}"
        )
    return row_distance(target, pred, mode).mean(dim=2)


def token_distance(target: torch.Tensor, pred: torch.Tensor, mode: str = "sym_ce") -> torch.Tensor:
    """Token distance (B, L): heads averaged, then layers averaged."""
    return layer_distances(target, pred, mode).mean(dim=1)


def rescale(scores: torch.Tensor, eps: float = RESCALE_EPS) -> torch.Tensor:
    """(s - min) / max(s - min) over the last axis, in [0, 1]; all-equal rows give 0, not NaN
    (the official code divides by zero there)."""
    shifted = scores - scores.amin(dim=-1, keepdim=True)
    return shifted / shifted.amax(dim=-1, keepdim=True).clamp_min(eps)


def structure_scores(target: torch.Tensor, pred: torch.Tensor, mode: str = "sym_ce"):
    """The rescaled per-token similarity S̃ (B, L) ∈ [0, 1]: 1 = most similar to the sketch."""
    return rescale(-token_distance(target, pred, mode))


def image_distance(target: torch.Tensor, pred: torch.Tensor, mode: str = "sym_ce"):
    """One number per row (B,): the token distance averaged over the image positions 1..N
    (the structure distance reported by the demo and used by the structure scorer)."""
    return token_distance(target, pred, mode)[:, 1:].mean(dim=-1)
