"""The demo's metrics (named stand-ins for CLIP-Acc, Structure Dist and BG-LPIPS)."""

import pytest
import torch

from diffrepro.pix2pix_zero.evaluation import (
    background_distance,
    edit_accuracy,
    finite,
    self_similarity,
    structure_distance,
)


def test_self_similarity_is_cosine_between_tokens():
    f = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    s = self_similarity(f)
    tokens = f.flatten(2).transpose(1, 2)
    expected = torch.nn.functional.cosine_similarity(tokens[:, :, None], tokens[:, None], dim=-1)
    assert s.shape == (2, 12, 12) and (s - expected).abs().max() < 1e-12


def test_structure_distance_ignores_scale_and_sees_rearrangement():
    f = torch.randn(1, 8, 4, 4, dtype=torch.float64)
    assert structure_distance(f, 3 * f).abs().max() < 1e-12
    shuffled = f.flatten(2)[:, :, torch.randperm(16)].reshape(1, 8, 4, 4)
    assert structure_distance(f, shuffled).item() > 1e-3


def test_background_distance_only_counts_pixels_outside_the_mask():
    x = torch.zeros(1, 3, 4, 4)
    alpha = torch.zeros(1, 1, 4, 4)
    alpha[..., :2, :] = 1.0
    y = x.clone()
    y[..., :2, :] = 5.0  # changes inside the mask are ignored
    assert background_distance(x, y, alpha).item() == 0.0
    y[..., 3, :] = 1.0  # one of the two background rows changes by 1
    assert background_distance(x, y, alpha).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no background"):
        background_distance(x, y, torch.ones(1, 1, 4, 4))


def test_edit_accuracy_and_finite():
    assert edit_accuracy(torch.tensor([0.1, 0.9, 0.5]), torch.tensor([0.2, 0.1, 0.6])) == 2 / 3
    with pytest.raises(ValueError, match="not finite"):
        finite("x", float("nan"))
