"""Final data consistency: pull a restoration onto the measurement up to the noise level.

ADIR's guided step is ``μ + s Σ g``: at the last reverse steps the variance Σ vanishes, so the
step does too and a sample keeps whatever residual it had (3–5 σ in earlier runs). This optional
final step (``guidance.final = "discrepancy"``, not in the paper) corrects the output x by the
minimum-norm δ ∈ range(Aᵀ) that brings the RMS residual ``‖A(x + δ) - y‖`` down to ``τ σ``
(Morozov's discrepancy principle): conjugate-gradient least squares (CGLS) on ``A δ = y - A x``
started at δ = 0, with its last step shortened so that the residual lands exactly on ``τ σ``.
Only measured components change (δ lies in the row space of A): the null-space content that
the diffusion model supplied is kept. A residual already at or below ``τ σ`` is left alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .operators import LinearOperator


def residual_rms(op: LinearOperator, x: Tensor, y: Tensor) -> Tensor:
    """Per-image RMS of ``A x - y`` over the measured entries (mask pixels only for masks)."""
    r = op.forward(x) - y
    w = op.measured(y).expand_as(r)
    return ((w * r.square()).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1)).sqrt()


def discrepancy_projection(
    op: LinearOperator,
    x: Tensor,
    y: Tensor,
    sigma: float,
    *,
    tau: float = 1.0,
    max_iterations: int = 100,
) -> Tensor:
    """``x + δ`` with ``rms(A(x + δ) - y) = τ σ`` (see the module docstring); per image."""
    if sigma < 0 or tau <= 0:
        raise ValueError(f"discrepancy projection needs sigma >= 0 and tau > 0, got {sigma}, {tau}")
    return torch.cat(
        [_one(op, x[i : i + 1], y[i : i + 1], tau * sigma, max_iterations) for i in range(len(x))]
    )


def _one(op: LinearOperator, x: Tensor, y: Tensor, target: float, iterations: int) -> Tensor:
    x64, y64 = x.double(), y.double()
    w = op.measured(y64).expand_as(y64)
    count = float(w.sum().clamp_min(1))
    goal = target**2 * count  # the wanted squared residual norm over the measured entries

    def sq(v: Tensor) -> float:
        return float((w * v.square()).sum())

    s = w * (y64 - op.forward(x64))  # residual of the correction problem A δ = y - A x
    if sq(s) <= goal:
        return x
    delta = torch.zeros_like(x64)
    d = op.adjoint(s)
    p, gamma = d, float(d.square().sum())
    for _ in range(iterations):
        if gamma == 0:
            break
        q = w * op.forward(p)
        step = gamma / max(sq(q), 1e-300)
        after = s - step * q
        if sq(after) <= goal:  # shorten this step: ‖s - a q‖² = goal, the smaller root
            step = _shortened(s, q, w, goal, step)
            delta = delta + step * p
            break
        delta, s = delta + step * p, after
        d = op.adjoint(s)
        new_gamma = float(d.square().sum())
        p, gamma = d + (new_gamma / gamma) * p, new_gamma
    return (x64 + delta).to(x.dtype)


def _shortened(s: Tensor, q: Tensor, w: Tensor, goal: float, full: float) -> float:
    a, b, c = float((w * q * q).sum()), float((w * s * q).sum()), float((w * s * s).sum())
    disc = max(b * b - a * (c - goal), 0.0)
    root = (b - disc**0.5) / a
    return min(max(root, 0.0), full)
