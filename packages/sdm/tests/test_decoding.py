import math

import numpy as np
import pytest
import torch

from diffrepro.sdm.decoding import DecodeConfig, inpaint, pick, uncertainty_map
from diffrepro.sdm.masks import MaskConfig, generate_masks
from diffrepro.sdm.schedule import SCHEDULES, commit_counts, still_unknown


class RandomPredictor:
    """A stand-in network: random mean and sigma, so every invariant is tested on noise."""

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x, mask0, mask, u, tau):
        mean = torch.rand(x.shape, generator=self.generator) * 4 - 2
        sigma = torch.rand(x.shape, generator=self.generator)
        return mean, sigma


def batch(size=16, count=3, seed=0):
    image = torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    masks = generate_masks(
        MaskConfig(size, "large", (0.3, 0.7)), count, np.random.default_rng(seed)
    )
    return image, masks


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("steps", [1, 3, 7])
def test_commit_counts_sum_and_follow_the_schedule(schedule, steps):
    for n in [0, 1, 5, 97, 1000]:
        counts = commit_counts(n, steps, schedule)
        assert sum(counts) == n and all(c >= 0 for c in counts)
        for t in range(steps + 1):
            expected = math.floor(n * (SCHEDULES[schedule](t / steps) if t < steps else 0.0))
            assert still_unknown(n, schedule, t, steps) == expected


def test_linear_schedule_commits_equal_steps_up_to_rounding():
    counts = commit_counts(1000, 7, "linear")
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize("continuous", [True, False])
def test_known_pixels_exact_schedule_exact_and_monotone_masks(continuous):
    image, mask0 = batch()
    cfg = DecodeConfig(steps=5, alpha=0.5, continuous=continuous)
    steps = inpaint(RandomPredictor(), image, mask0, cfg, torch.Generator().manual_seed(1))
    known = mask0.bool().expand_as(image)
    n_unknown = (1 - mask0).flatten(1).sum(1).long().tolist()
    previous = mask0
    for t, step in enumerate(steps, start=1):
        assert torch.equal(step.image[known], image[known])  # bit-exact
        assert bool((step.mask >= previous).all())  # never un-commits
        committed = (step.mask - previous).flatten(1).sum(1).long().tolist()
        assert committed == [commit_counts(n, 5)[t - 1] for n in n_unknown]
        hole = ~step.mask.bool().expand_as(image)
        assert bool((step.image[hole] == 0).all())
        previous = step.mask
    assert bool((steps[-1].mask == 1).all())


def test_frozen_committed_pixels_keep_their_value():
    image, mask0 = batch()
    steps = inpaint(RandomPredictor(), image, mask0, DecodeConfig(steps=4, continuous=False))
    for before, after in zip(steps, steps[1:]):
        kept = before.mask.bool().expand_as(image)
        assert torch.equal(after.image[kept], before.image[kept])


def test_pick_commits_the_lowest_uncertainty_unknown_pixels():
    u = torch.tensor([[0.9, 0.1, 0.5], [0.05, 0.7, 0.3], [0.2, 0.0, 0.6]]).view(1, 1, 3, 3)
    mask = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float32).view(1, 1, 3, 3)
    new = pick(u, mask, torch.tensor([3]))
    # unknown pixels by uncertainty: 0.1, 0.2, 0.3, 0.5, ...; known 0.05 and 0.0 are never re-picked
    expected = torch.tensor([[0, 1, 0], [1, 0, 1], [1, 1, 0]], dtype=torch.float32).view(1, 1, 3, 3)
    assert torch.equal(new, expected)


def test_pick_breaks_ties_by_flat_index():
    mask = torch.zeros(1, 1, 2, 2)
    new = pick(torch.full((1, 1, 2, 2), 0.5), mask, torch.tensor([2]))
    assert new.flatten().tolist() == [1, 1, 0, 0]


def test_uncertainty_map_is_zero_on_known_one_on_unknown_bounded_elsewhere():
    image, mask0 = batch()
    steps = inpaint(RandomPredictor(), image, mask0, DecodeConfig(steps=4))
    for step in steps:
        u = step.uncertainty
        assert bool((u[mask0.bool()] == 0).all())
        assert bool((u[~step.mask.bool()] == 1).all())
        assert bool(((u >= 0) & (u <= 1)).all())
    raw = torch.full_like(mask0, 7.0)
    assert float(uncertainty_map(mask0, torch.ones_like(mask0), raw).max()) == 1.0


def test_alpha_zero_is_independent_of_noise_and_seed_is_deterministic():
    image, mask0 = batch()
    run = lambda alpha, seed: inpaint(  # noqa: E731
        RandomPredictor(),
        image,
        mask0,
        DecodeConfig(steps=3, alpha=alpha),
        torch.Generator().manual_seed(seed),
    )
    assert torch.equal(run(0.0, 1)[1].image, run(0.0, 2)[1].image)
    assert torch.equal(run(0.5, 1)[1].image, run(0.5, 1)[1].image)
    assert not torch.equal(run(0.5, 1)[1].image, run(0.5, 2)[1].image)


def test_last_iteration_writes_the_mean():
    image, mask0 = batch()
    steps = inpaint(RandomPredictor(), image, mask0, DecodeConfig(steps=2, alpha=1.0))
    hole = ~mask0.bool().expand_as(image)
    assert torch.equal(steps[-1].image[hole], steps[-1].mean.clamp(-1, 1)[hole])
