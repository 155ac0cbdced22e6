"""Mask scheduling functions γ(r) (official ``libml/mask_schedule.schedule``).

γ maps a ratio r ∈ [0, 1] to the fraction of tokens that stay masked: γ(0) = 1, decreasing,
clipped to [1e-6, 1]. Names: ``cosine`` (default), ``linear`` (= the official ``uniform``),
``square`` (= ``pow2``), ``square-root`` (= ``pow0.5``), any ``powP`` (γ = 1 - r^P), and ``log`` /
``exp``, which depend on the number of unknown tokens N0.
"""

from __future__ import annotations

import math

import torch

MIN_RATIO = 1e-6
ALIASES = {"uniform": "linear", "pow1": "linear", "pow2": "square", "pow0.5": "square-root"}
NAMED = ("cosine", "linear", "square", "square-root", "cubic", "log", "exp")


def canonical(method: str) -> str:
    """The schedule's canonical name; a clear error for an unknown one."""
    method = ALIASES.get(method, method)
    if method in NAMED:
        return method
    if method.startswith("pow"):
        try:
            if float(method[3:]) > 0:
                return method
        except ValueError:
            pass
    raise ValueError(
        f"unknown mask schedule {method!r} (known: {', '.join(NAMED)}, uniform, powP with P > 0)"
    )


def gamma(ratio: torch.Tensor | float, method: str = "cosine", total_unknown: int = 256):
    """γ(ratio) for ``method``, clipped to [1e-6, 1]; a tensor in gives a tensor out."""
    method = canonical(method)
    log_n = math.log2(max(total_unknown, 2))  # log / exp need N0 >= 2 (N0 < 2: as if 2)
    r = torch.as_tensor(ratio, dtype=torch.float64)
    if method == "cosine":
        out = torch.cos(math.pi / 2 * r)
    elif method == "linear":
        out = 1 - r
    elif method == "square":
        out = 1 - r**2
    elif method == "square-root":
        out = 1 - r**0.5
    elif method == "cubic":
        out = 1 - r**3
    elif method == "log":
        out = -torch.log2(r) / log_n
    elif method == "exp":
        out = 1 - torch.exp2(-log_n * (1 - r))
    else:
        out = 1 - r ** float(method[3:])
    out = out.clamp(MIN_RATIO, 1.0)
    return out if isinstance(ratio, torch.Tensor) else float(out)


def masked_after_step(
    step: int, num_iter: int, total_unknown: int, masked_now: int, method: str = "cosine"
) -> int:
    """n_t = max(1, min(U_t - 1, ⌊N0 · γ((t+1)/T)⌋)): tokens left masked after step ``t``."""
    ratio = (step + 1) / num_iter
    target = math.floor(total_unknown * gamma(ratio, method, total_unknown))
    return max(1, min(masked_now - 1, target))


def masked_counts(
    total_unknown: int, num_iter: int, method: str = "cosine", start_iter: int = 0
) -> list[int]:
    """Tokens still masked after each step t = start_iter..T-1 (the decoder's own formula)."""
    check_iterations(num_iter, start_iter)
    counts, masked = [], total_unknown
    for step in range(start_iter, num_iter):
        masked = masked_after_step(step, num_iter, total_unknown, masked, method)
        counts.append(masked)
    return counts


def training_mask_count(ratio: float, num_tokens: int, method: str = "cosine") -> int:
    """⌈γ(r) N⌉ tokens masked for a training example with ratio r ~ U[0, 1) (at least 1)."""
    return max(1, math.ceil(gamma(ratio, method, num_tokens) * num_tokens))


def check_iterations(num_iter: int, start_iter: int = 0) -> None:
    if num_iter < 1:
        raise ValueError(f"the number of decoding steps must be at least 1, got {num_iter}")
    if not 0 <= start_iter < num_iter:
        raise ValueError(f"start_iter must lie in [0, {num_iter}), got {start_iter}")
