import numpy as np
import pytest
import torch

from diffrepro.sdm.masks import MaskConfig, assert_mask, generate_mask, generate_masks, hole_ratio


@pytest.mark.parametrize("kind", ["large", "small"])
def test_masks_are_binary_known_is_one_and_ratio_in_range(kind):
    cfg = MaskConfig(size=32, kind=kind, hole_range=(0.3, 0.7))
    masks = generate_masks(cfg, 64, np.random.default_rng(0))
    assert masks.shape == (64, 1, 32, 32) and masks.dtype == torch.float32
    assert_mask(masks)
    ratios = hole_ratio(masks)
    assert bool(((ratios > 0.3) & (ratios < 0.7)).all())


def test_masks_are_reproducible():
    cfg = MaskConfig(size=32)
    a = generate_mask(cfg, np.random.default_rng(3))
    b = generate_mask(cfg, np.random.default_rng(3))
    assert np.array_equal(a, b)


def test_small_masks_are_smaller_than_large_on_average():
    rng = np.random.default_rng(1)
    large = hole_ratio(generate_masks(MaskConfig(64, "large", (0.0, 1.0)), 300, rng)).mean()
    small = hole_ratio(generate_masks(MaskConfig(64, "small", (0.0, 1.0)), 300, rng)).mean()
    assert small < large


def test_bad_mask_inputs_are_rejected():
    with pytest.raises(ValueError, match="hole_range"):
        generate_mask(MaskConfig(hole_range=(0.7, 0.3)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="kind"):
        generate_mask(MaskConfig(kind="huge"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="only 0"):
        assert_mask(torch.full((1, 1, 4, 4), 0.5))
