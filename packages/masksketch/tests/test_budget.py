import pytest

from diffrepro.masksketch.budget import budgets, initial_masked, mask_rate, split_budget


def test_budget_list_for_n0_244_and_8_steps():
    assert budgets(244, 8) == [213, 195, 176, 158, 140, 122, 103, 85]


def test_budget_with_500_steps_runs_from_231_down_to_85():
    n = budgets(244, 500)
    assert n[0] == 231 and n[-1] == 85 and len(n) == 500
    assert all(a >= b for a, b in zip(n, n[1:]))


def test_budget_never_drops_below_the_minimum_mask_rate():
    assert min(budgets(61, 20)) == int(0.35 * 61)
    assert mask_rate(19, 20, 0.35, 0.95, "linear") == pytest.approx(0.35, abs=1e-6)
    assert mask_rate(0, 20, 0.35, 0.95, "linear") == pytest.approx(0.35 + 0.95 * 0.6)


def test_budget_follows_the_schedule_between_the_two_rates():
    # cosine γ((t+1)/T) instead of the linear one; rates 0.2 .. 0.8
    import math

    expected = [
        math.floor(100 * (0.2 + math.cos(math.pi / 2 * (t + 1) / 4) * 0.6)) for t in range(4)
    ]
    assert budgets(100, 4, min_rate=0.2, max_rate=0.8, schedule="cosine") == expected


def test_split_into_structure_and_confidence_budgets():
    ks, kc = zip(*(split_budget(n, 0.9) for n in budgets(244, 8)))
    assert ks[:3] == (191, 175, 158) and kc[:3] == (21, 19, 17)
    assert all(max(s, c) <= n and s + c <= n for s, c, n in zip(ks, kc, budgets(244, 8)))
    assert split_budget(213, 0.0) == (0, 213) and split_budget(213, 1.0) == (213, 0)
    assert split_budget(10, 0.3) == (3, 7)


def test_initial_mask_count():
    assert initial_masked(256, 0.95) == 244
    assert initial_masked(64, 0.95) == 61
    assert initial_masked(16, 1.0) == 15  # at least one sketch token stays visible
    assert initial_masked(16, 0.0) == 0
