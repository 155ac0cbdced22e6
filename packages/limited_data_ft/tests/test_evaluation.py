"""KID, memorisation and diversity against float64 numpy references and hand-made cases."""

import math

import numpy as np
import pytest
import torch

from diffrepro.limited_data_ft.evaluation import (
    feature_fd,
    intra_cluster_diversity,
    kid,
    memorisation_rate,
    memorisation_threshold,
    mmd2_unbiased,
    nearest_distances,
    real_fid_kid,
)


def numpy_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.sum() / (m * n)
    )


def test_mmd2_matches_numpy():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 4, generator=gen), torch.randn(9, 4, generator=gen) + 0.5
    assert mmd2_unbiased(a, b) == pytest.approx(numpy_mmd2(a.double().numpy(), b.double().numpy()))


def test_kid_over_full_subsets_is_the_mmd_of_the_sets():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, 3, generator=gen), torch.randn(8, 3, generator=gen) * 2
    mean, std = kid(a, b, subsets=4, subset_size=100)
    assert mean == pytest.approx(mmd2_unbiased(a, b), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_ranks_distributions():
    gen = torch.Generator().manual_seed(2)
    ref = torch.randn(200, 5, generator=gen)
    near = torch.randn(200, 5, generator=gen)
    far = torch.randn(200, 5, generator=gen) + 1.0
    assert (
        kid(near, ref, subsets=5, subset_size=100)[0] < kid(far, ref, subsets=5, subset_size=100)[0]
    )


def test_fd_of_a_shift_is_its_squared_norm():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    shift = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
    assert feature_fd(a, a + shift) == pytest.approx(5.0, rel=1e-6)


def test_memorisation_counts_copies_of_training_images():
    gen = torch.Generator().manual_seed(4)
    train = torch.rand(3, 3, 4, 4, generator=gen) * 2 - 1
    far = torch.rand(3, 3, 4, 4, generator=gen) * 2 - 1
    samples = torch.cat([train, far])
    heldout = torch.rand(20, 3, 4, 4, generator=gen) * 2 - 1
    threshold = memorisation_threshold(heldout, train, 0.05)
    d, _ = nearest_distances(heldout, train)
    assert threshold == pytest.approx(float(np.quantile(d.numpy(), 0.05)))
    assert threshold > 0
    rate = memorisation_rate(samples, train, threshold)
    dist, index = nearest_distances(samples, train)
    assert torch.equal(index[:3], torch.arange(3)) and torch.all(dist[:3] == 0)
    assert rate == pytest.approx((3 + int((dist[3:] < threshold).sum())) / 6)


def test_nearest_distance_is_per_pixel_rms():
    x = torch.zeros(1, 3, 2, 2)
    ref = torch.stack([torch.full((3, 2, 2), 0.5), torch.full((3, 2, 2), -2.0)])
    dist, index = nearest_distances(x, ref)
    assert index.item() == 0 and dist.item() == pytest.approx(0.5)


def test_intra_cluster_diversity_by_hand():
    train = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-50.0, 0.0]])
    samples = torch.tensor([[0.0, 0.0], [0.0, 1.0], [10.0, 10.0], [10.0, 12.0], [12.0, 10.0]])
    # cluster 0: one pair at distance 1; cluster 1: distances 2, 2, sqrt(8); cluster 2 empty
    expected = (1.0 + (2 + 2 + math.sqrt(8)) / 3) / 2
    assert intra_cluster_diversity(samples, train) == pytest.approx(expected)
    assert intra_cluster_diversity(samples[:1], train) == 0.0


def test_bad_metric_inputs():
    with pytest.raises(ValueError, match="at least 2"):
        kid(torch.randn(1, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="quantile"):
        memorisation_threshold(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), 1.0)
    with pytest.raises(ValueError, match="shape"):
        nearest_distances(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 3, 3))


def test_real_fid_needs_local_weights(tmp_path):
    x = torch.zeros(2, 3, 8, 8)
    with pytest.raises(FileNotFoundError, match="Inception weights"):
        real_fid_kid(x, x, tmp_path / "missing.pth", tmp_path / "work")
