"""One-dimensional degradation matrices: average pooling, bicubic decimation, circular blur.

Every image operator that acts separably on rows and columns (``A x = R X Cᵀ``) is described by
two such matrices, so its adjoint (``Rᵀ U C``) and Moore–Penrose pseudo-inverse
(``R⁺ U C⁺ᵀ``, since ``pinv(R ⊗ C) = pinv(R) ⊗ pinv(C)``) are exact by construction.
Boundaries wrap around (circular), which keeps the adjoint exact (spec §9.6).
All matrices are float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_factor(size: int, factor: int) -> None:
    if factor < 1 or size % factor:
        raise ValueError(f"image size {size} is not divisible by the scale factor {factor}")


def average_pool_matrix(size: int, factor: int) -> Tensor:
    """(size/factor, size) matrix averaging non-overlapping blocks of ``factor`` pixels."""
    _check_factor(size, factor)
    rows = torch.arange(size // factor).repeat_interleave(factor)
    matrix = torch.zeros(size // factor, size, dtype=torch.float64)
    matrix[rows, torch.arange(size)] = 1.0 / factor
    return matrix


def cubic(x: Tensor, a: float = -0.5) -> Tensor:
    """Keys' cubic convolution kernel with parameter ``a`` (-0.5 as in DDRM's ``sr_bicubic``)."""
    ax = x.abs()
    near = (a + 2) * ax**3 - (a + 3) * ax**2 + 1
    far = a * ax**3 - 5 * a * ax**2 + 8 * a * ax - 4 * a
    return torch.where(ax <= 1, near, torch.where(ax < 2, far, torch.zeros_like(ax)))


def bicubic_taps(factor: int, a: float = -0.5) -> Tensor:
    """The ``4·factor`` normalised anti-aliasing taps of bicubic downsampling by ``factor``."""
    offsets = (torch.arange(4 * factor, dtype=torch.float64) - 2 * factor + 0.5) / factor
    taps = cubic(offsets, a)
    return taps / taps.sum()


def bicubic_matrix(size: int, factor: int, a: float = -0.5) -> Tensor:
    """(size/factor, size) matrix of bicubic downsampling, taps centred on each output pixel."""
    _check_factor(size, factor)
    taps = bicubic_taps(factor, a)
    out = size // factor
    # Output j is centred at input coordinate j·f + (f-1)/2; tap i sits at input j·f + i - 3f/2.
    cols = (
        torch.arange(out)[:, None] * factor
        + torch.arange(taps.numel())[None, :]
        - (3 * factor) // 2
    ) % size
    matrix = torch.zeros(out, size, dtype=torch.float64)
    matrix.index_put_(
        (torch.arange(out)[:, None].expand_as(cols), cols), taps.expand_as(cols), accumulate=True
    )
    return matrix


def uniform_taps(length: int) -> Tensor:
    """A box kernel of ``length`` taps summing to one."""
    if length < 1:
        raise ValueError(f"blur kernel length must be positive, got {length}")
    return torch.full((length,), 1.0 / length, dtype=torch.float64)


def gaussian_taps(std: float, length: int | None = None) -> Tensor:
    """A normalised Gaussian kernel; ``length`` defaults to the odd size covering ±3 std."""
    if std <= 0:
        raise ValueError(f"Gaussian blur std must be positive, got {std}")
    length = length or 2 * math.ceil(3 * std) + 1
    x = torch.arange(length, dtype=torch.float64) - (length - 1) / 2
    taps = torch.exp(-0.5 * (x / std) ** 2)
    return taps / taps.sum()


def circulant_matrix(size: int, taps: Tensor) -> Tensor:
    """(size, size) circular convolution with ``taps`` centred at index ``(len-1)//2``."""
    taps = taps.to(torch.float64)
    centre = (taps.numel() - 1) // 2
    rows = torch.arange(size)[:, None].expand(size, taps.numel())
    cols = (rows - torch.arange(taps.numel())[None, :] + centre) % size
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.index_put_((rows, cols), taps.expand(size, -1), accumulate=True)
    return matrix
