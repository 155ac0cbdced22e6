import math

import numpy as np
import pytest
import torch

from diffrepro.core.metrics import (
    TinyFeatureExtractor,
    feature_frechet_distance,
    frechet_distance,
    gaussian_fit,
    psnr,
    ssim,
    ssim_map,
)


def _ssim_reference(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """Wang et al. SSIM in float64 with an explicit sliding 11x11 window (one channel, valid)."""
    offsets = np.arange(11) - 5
    g1 = np.exp(-(offsets**2) / (2 * 1.5**2))
    w = np.outer(g1, g1)
    w /= w.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cov = (w * (a - ma) * (b - mb)).sum()
            values.append(
                ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
            )
    return float(np.mean(values))


def test_ssim_identity_and_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 2, 16, 18, generator=gen) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    ours = ssim(x, y)
    for b in range(2):
        expected = np.mean(
            [
                _ssim_reference(x[b, c].double().numpy(), y[b, c].double().numpy(), 2.0)
                for c in range(2)
            ]
        )
        assert abs(float(ours[b]) - expected) < 1e-6
    assert float(ours.max()) < 0.95


def test_ssim_map_is_local_and_averages_to_ssim() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 20, 24, generator=gen) * 2 - 1
    y = x.clone()
    y[..., 14:, 18:] = -y[..., 14:, 18:]  # change a corner only
    local = ssim_map(x, y)
    assert local.shape == (2, 3, 10, 14) and local.dtype == torch.float64
    torch.testing.assert_close(local.flatten(1).mean(1).float(), ssim(x, y))
    # windows at map column j cover pixel columns j … j + 10: those left of column 18 are exact
    torch.testing.assert_close(local[..., :8], torch.ones_like(local[..., :8]))
    assert float(local[..., -1, -1].max()) < 0.9


def test_ssim_rejects_small_or_mismatched_images() -> None:
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        ssim(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 17))


def test_psnr_matches_definition() -> None:
    x = torch.zeros(1, 3, 4, 4)
    y = torch.full_like(x, 0.1)
    torch.testing.assert_close(psnr(x, y), torch.tensor([10 * math.log10(4 / 0.01)]))
    assert torch.isinf(psnr(x, x)).all()


def test_frechet_distance_closed_forms() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    sigma = a @ a.T + torch.eye(5, dtype=torch.float64)
    mu = torch.randn(5, generator=gen, dtype=torch.float64)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
    # Diagonal covariances: ||mu1-mu2||^2 + sum (sqrt(s1) - sqrt(s2))^2.
    s1, s2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 0.25])
    m1, m2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + ((s1.sqrt() - s2.sqrt()) ** 2).sum().item()
    assert frechet_distance(m1, torch.diag(s1), m2, torch.diag(s2)) == pytest.approx(
        expected, rel=1e-10
    )
    # Commuting covariances through a common rotation: same closed form in the eigenbasis.
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    rotated = frechet_distance(
        q @ m1.double(),
        q @ torch.diag(s1).double() @ q.T,
        q @ m2.double(),
        q @ torch.diag(s2).double() @ q.T,
    )
    assert rotated == pytest.approx(expected, rel=1e-8)


def test_feature_frechet_distance_with_tiny_extractor() -> None:
    gen = torch.Generator().manual_seed(1)
    extractor = TinyFeatureExtractor(dim=8)
    a = torch.rand(64, 3, 16, 16, generator=gen) * 2 - 1
    b = torch.rand(64, 3, 16, 16, generator=gen) * 2 - 1
    shifted = (a * 0.3 + 0.5).clamp(-1, 1)
    assert feature_frechet_distance(a, a, extractor) == pytest.approx(0.0, abs=1e-8)
    assert feature_frechet_distance(a, b, extractor) < feature_frechet_distance(
        a, shifted, extractor
    )
    assert torch.equal(TinyFeatureExtractor(dim=8)(a[:2]), extractor(a[:2]))  # fixed weights
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_fit(torch.zeros(1, 3))
