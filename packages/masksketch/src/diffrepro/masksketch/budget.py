"""Re-mask budgets of the structure-guided decoder (spec §3.4, step 5-6).

With N0 tokens masked at the start and T iterations, step t masks

    n_t = ⌊N0 · (m_min + γ((t+1)/T) · (m_max - m_min))⌋

tokens in total, split into k_s = ⌊λs n_t⌋ for the lowest structure scores and
k_c = ⌊(1 - λs) n_t⌋ for the lowest confidences (the two masks are OR-ed, so
max(k_s, k_c) ≤ |M| ≤ k_s + k_c ≤ n_t). Unlike MaskGIT, n_t never drops below m_min · N0.
"""

from __future__ import annotations

import math

from diffrepro.maskgit.schedule import check_iterations, gamma


def initial_masked(num_tokens: int, max_mask_rate: float) -> int:
    """N0 = min(⌈m_max N⌉, N - 1): at least one sketch token stays visible."""
    return int(min(math.ceil(max_mask_rate * num_tokens), num_tokens - 1))


def mask_rate(
    step: int, num_iter: int, min_rate: float, max_rate: float, schedule: str, n0: int = 256
) -> float:
    """m_t = m_min + γ((t+1)/T) (m_max - m_min) (N0 matters only for the log / exp γ)."""
    return min_rate + gamma((step + 1) / num_iter, schedule, n0) * (max_rate - min_rate)


def step_budget(n0: int, step: int, num_iter: int, min_rate, max_rate, schedule) -> int:
    """n_t = ⌊N0 m_t⌋."""
    return math.floor(n0 * mask_rate(step, num_iter, min_rate, max_rate, schedule, n0))


def split_budget(n_t: int, lambda_structure: float) -> tuple[int, int]:
    """(k_s, k_c) = (⌊λs n_t⌋, ⌊(1 - λs) n_t⌋)."""
    return math.floor(lambda_structure * n_t), math.floor((1.0 - lambda_structure) * n_t)


def budgets(
    n0: int,
    num_iter: int,
    *,
    min_rate: float = 0.35,
    max_rate: float = 0.95,
    schedule: str = "linear",
) -> list[int]:
    """n_t for t = 0..T-1 (N0 = 244, T = 8 gives 213, 195, 176, 158, 140, 122, 103, 85)."""
    check_iterations(num_iter)
    return [step_budget(n0, t, num_iter, min_rate, max_rate, schedule) for t in range(num_iter)]
