import math

import pytest
import torch

from diffrepro.maskgit.masking import mask_counts, mask_inputs, random_mask
from diffrepro.maskgit.schedule import canonical, gamma, masked_counts, training_mask_count


def reference_gamma(r: float, method: str, n0: int) -> float:
    """Independent rewrite of the official mask_schedule.schedule."""
    value = {
        "cosine": lambda: math.cos(math.pi / 2 * r),
        "linear": lambda: 1 - r,
        "square": lambda: 1 - r * r,
        "square-root": lambda: 1 - math.sqrt(r),
        "cubic": lambda: 1 - r**3,
        "pow1.5": lambda: 1 - r**1.5,
        "log": lambda: (-math.log2(r) if r > 0 else math.inf) / math.log2(n0),
        "exp": lambda: 1 - 2 ** (-math.log2(n0) * (1 - r)),
    }[method]()
    return min(max(value, 1e-6), 1.0)


def reference_counts(n0: int, steps: int, method: str, start: int = 0) -> list[int]:
    out, unknown = [], n0
    for t in range(start, steps):
        target = math.floor(n0 * reference_gamma((t + 1) / steps, method, n0))
        unknown = max(1, min(unknown - 1, target))
        out.append(unknown)
    return out


@pytest.mark.parametrize(
    ("n0", "steps", "start", "expected"),
    [
        (256, 8, 0, [251, 236, 212, 181, 142, 97, 49, 1]),
        (256, 12, 0, [253, 247, 236, 221, 203, 181, 155, 128, 97, 66, 33, 1]),
        (1024, 12, 0, [1015, 989, 946, 886, 812, 724, 623, 512, 391, 265, 133, 1]),
        (100, 12, 2, [92, 86, 79, 70, 60, 50, 38, 25, 13, 1]),
    ],
)
def test_cosine_counts_match_the_spec(n0, steps, start, expected):
    assert masked_counts(n0, steps, "cosine", start) == expected


METHODS = ("cosine", "linear", "square", "square-root", "cubic", "pow1.5", "log", "exp")


@pytest.mark.parametrize("method", METHODS)
def test_gamma_is_decreasing_from_one_and_clipped(method):
    r = torch.linspace(0, 1, 101, dtype=torch.float64)
    g = gamma(r, method, 64)
    start = 1 - 1 / 64 if method == "exp" else 1.0  # the official exp schedule starts below 1
    assert float(g[0]) == pytest.approx(start, abs=1e-15) and float(g[-1]) == pytest.approx(
        1e-6, abs=1e-12
    )
    assert bool((g[1:] <= g[:-1]).all())
    for ri in (0.0, 0.13, 0.5, 0.77, 0.999, 1.0):
        assert gamma(ri, method, 64) == pytest.approx(reference_gamma(ri, method, 64), rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("n0", "steps", "start"),
    [(7, 3, 0), (64, 5, 1), (333, 10, 0), (49, 7, 3), (12, 30, 0), (5, 16, 2)],
)
def test_counts_follow_the_general_formula(method, n0, steps, start):
    assert masked_counts(n0, steps, method, start) == reference_counts(n0, steps, method, start)


def test_aliases_and_unknown_schedules():
    assert canonical("uniform") == "linear" and canonical("pow2") == "square"
    assert canonical("pow0.5") == "square-root"
    assert gamma(0.3, "pow2") == gamma(0.3, "square")
    for bad in ("nope", "pow-1", "powx"):
        with pytest.raises(ValueError, match="unknown mask schedule"):
            canonical(bad)
    with pytest.raises(ValueError, match="at least 1"):
        masked_counts(10, 0)
    with pytest.raises(ValueError, match="start_iter"):
        masked_counts(10, 4, start_iter=4)


def test_training_mask_count_is_ceiling():
    assert training_mask_count(0.0, 256) == 256
    assert training_mask_count(0.5, 256) == math.ceil(math.cos(math.pi / 4) * 256)  # 182
    assert training_mask_count(0.999999, 16) == 1
    r = torch.tensor([0.0, 0.25, 0.5, 0.9], dtype=torch.float64)
    expected = [math.ceil(reference_gamma(float(x), "cosine", 16) * 16) for x in r]
    assert mask_counts(r, 16).tolist() == expected


def test_random_mask_masks_exactly_the_scheduled_count():
    gen = torch.Generator().manual_seed(3)
    mask = random_mask(500, 16, generator=gen)
    gen = torch.Generator().manual_seed(3)
    ratios = torch.rand(500, generator=gen, dtype=torch.float64)
    assert mask.sum(1).tolist() == mask_counts(ratios, 16).tolist()
    # uniform positions: every position is masked about equally often
    freq = mask.double().mean(0)
    assert float(freq.max() - freq.min()) < 0.15


def test_mask_inputs_keeps_class_token_and_targets():
    codes = torch.randint(0, 8, (64, 9))
    labels = torch.randint(0, 3, (64,))
    gen = torch.Generator().manual_seed(0)
    inputs, targets, masked = mask_inputs(codes, labels, codebook_size=8, mask_id=11, generator=gen)
    assert torch.equal(targets[:, 0], 8 + labels) and torch.equal(targets[:, 1:], codes)
    assert not masked[:, 0].any() and torch.equal(inputs[:, 0], 8 + labels)
    assert bool((inputs[masked] == 11).all()) and torch.equal(inputs[~masked], targets[~masked])
    assert bool((masked[:, 1:].sum(1) >= 1).all())
    dropped, _, _ = mask_inputs(
        codes,
        labels,
        codebook_size=8,
        mask_id=11,
        cond_drop=0.5,
        generator=torch.Generator().manual_seed(0),
    )
    share = float((dropped[:, 0] == 11).double().mean())
    assert 0.2 < share < 0.8
