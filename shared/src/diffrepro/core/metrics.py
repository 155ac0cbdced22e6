"""Image metrics: PSNR, SSIM, and the Fréchet distance over features of a pluggable extractor.

- ``psnr`` and ``ssim`` take (B, C, H, W) or (C, H, W) images; ``data_range`` is the span of the
  value range, 2.0 for our [-1, 1] images (use 1.0 or 255 for other conventions).
- ``ssim`` is the standard definition of Wang et al. (2004): an 11-tap Gaussian window with
  σ = 1.5, K1 = 0.01, K2 = 0.03, statistics from the window without the sample-covariance
  correction, averaged over the valid positions (no padding) and the channels.
  ``ssim_map`` is the local index before that average (e.g. to average over a region).
- ``frechet_distance`` is ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½) in float64, computed through the
  symmetric form (Σ₁^½ Σ₂ Σ₁^½)^½, which has the same trace and is stable.
  ``feature_frechet_distance(a, b, extractor)`` fits Gaussians to ``extractor(images)``.
  No Inception weights ship with this package and nothing is downloaded: FID proper needs a
  user's Inception network with weights from a local file, passed as any callable
  images → (N, D) features (e.g. pytorch-fid's ``InceptionV3`` built with a local
  ``pt_inception-2015-12-05`` state dict, or StyleGAN's TorchScript ``inception-2015-12-05.pt``;
  resize and rescale the images as that network expects). :class:`TinyFeatureExtractor` is a
  fixed random convolutional network for tests and CPU demos; its distances are **not** FID.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, one value per image."""
    x, y = _as_batch(x, y)
    mse = (x.double() - y.double()).square().flatten(1).mean(dim=1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 2.0,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity, one value per image (mean over channels and window positions)."""
    index = ssim_map(x, y, data_range, window_size=window_size, sigma=sigma, k1=k1, k2=k2)
    return index.flatten(1).mean(dim=1).float()


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 2.0,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """The local SSIM index (float64, (B, C, H - w + 1, W - w + 1) for window size w) whose mean
    is :func:`ssim`; position (i, j) is the window centred on pixel (i + w // 2, j + w // 2)."""
    x, y = _as_batch(x, y)
    if min(x.shape[-2:]) < window_size:
        raise ValueError(
            f"SSIM needs images of at least {window_size}x{window_size}, got {tuple(x.shape[-2:])}"
        )
    x, y = x.double(), y.double()
    c = x.shape[1]
    g = gaussian_window(window_size, sigma).to(x.device)
    kernel_h = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    kernel_v = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(z, kernel_h, groups=c), kernel_v, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    )
    return index


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2, sigma1, sigma2 = (
        torch.as_tensor(a, dtype=torch.float64) for a in (mu1, mu2, sigma1, sigma2)
    )
    if (
        mu1.shape != mu2.shape
        or sigma1.shape != sigma2.shape
        or sigma1.shape != (mu1.numel(), mu1.numel())
    ):
        raise ValueError(
            "means and covariances of the two Gaussians must have matching shapes (D,) and (D, D)"
        )
    root1 = _psd_sqrt(sigma1)
    trace_cross = _psd_sqrt(root1 @ sigma2 @ root1).trace()
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_cross
    return float(value.clamp_min(0.0))


def gaussian_fit(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of (N, D) features, float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {tuple(features.shape)}")
    f = features.double()
    return f.mean(dim=0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


@torch.no_grad()
def extract_features(
    images: torch.Tensor, extractor: FeatureExtractor, batch_size: int = 64
) -> torch.Tensor:
    return torch.cat([extractor(chunk).flatten(1) for chunk in images.split(batch_size)])


def feature_frechet_distance(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    extractor: FeatureExtractor,
    batch_size: int = 64,
) -> float:
    """Fréchet distance between Gaussian fits of ``extractor`` features of two image sets."""
    fit_a = gaussian_fit(extract_features(images_a, extractor, batch_size))
    fit_b = gaussian_fit(extract_features(images_b, extractor, batch_size))
    return frechet_distance(*fit_a, *fit_b)


class TinyFeatureExtractor(nn.Module):
    """A fixed, randomly initialised (seeded) conv net: images in [-1, 1] → (N, dim) features.

    For tests and offline demos only. It ranks distributions sensibly but its numbers are not
    comparable to FID; plug a real Inception network for that.
    """

    def __init__(self, dim: int = 64, seed: int = 0, in_channels: int = 3) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        widths = [in_channels, 16, 32, dim]
        convs = [nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(widths, widths[1:])]
        with torch.no_grad():
            for conv in convs:
                conv.weight.copy_(
                    torch.randn(conv.weight.shape, generator=gen) / (conv.weight[0].numel() ** 0.5)
                )
                conv.bias.zero_()  # type: ignore[union-attr]
        self.convs = nn.ModuleList(convs)
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = images
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        return h.mean(dim=(-2, -1))


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def _as_batch(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != y.shape:
        raise ValueError(
            f"images must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.ndim == 3:
        x, y = x[None], y[None]
    if x.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) or (C, H, W) images, got {tuple(x.shape)}")
    return x, y
