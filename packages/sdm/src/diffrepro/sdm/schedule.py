"""Mask schedules: how many hole pixels each iteration commits (spec §3.3, MaskGIT-style).

``r(τ)`` is the fraction of the initially unknown pixels still unknown at schedule position
τ = t / T (r(0) = 1, r(1) = 0); iteration t commits n_t = ⌊N r((t-1)/T)⌋ - ⌊N r(t/T)⌋ pixels,
so the counts sum to N exactly. Linear is the paper's best (ablation, secondary source); cosine,
square-root and cubic are the ablated alternatives (exact definitions not verified).
"""

from __future__ import annotations

import math
from collections.abc import Callable

SCHEDULES: dict[str, Callable[[float], float]] = {
    "linear": lambda tau: 1.0 - tau,
    "cosine": lambda tau: math.cos(math.pi * tau / 2),
    "sqrt": lambda tau: 1.0 - math.sqrt(tau),
    "cubic": lambda tau: 1.0 - tau**3,
}


def remaining_fraction(schedule: str, tau: float) -> float:
    """r(τ): the fraction of initially unknown pixels still unknown at position τ ∈ [0, 1]."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown mask schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"schedule position must lie in [0, 1], got {tau}")
    return 0.0 if tau == 1.0 else SCHEDULES[schedule](tau)


def still_unknown(n_unknown: int, schedule: str, step: int, steps: int) -> int:
    """How many of ``n_unknown`` hole pixels remain unknown after ``step`` of ``steps``."""
    return math.floor(n_unknown * remaining_fraction(schedule, step / steps))


def commit_counts(n_unknown: int, steps: int, schedule: str = "linear") -> list[int]:
    """n_t for t = 1..steps: the pixels committed by each iteration; they sum to ``n_unknown``."""
    if steps < 1:
        raise ValueError(f"the number of iterations must be ≥ 1, got {steps}")
    left = [still_unknown(n_unknown, schedule, t, steps) for t in range(steps + 1)]
    return [left[t - 1] - left[t] for t in range(1, steps + 1)]
