"""Linear degradation operators ``y = A x`` with their true adjoints and pseudo-inverses.

Images are batches ``(B, C, H, W)`` in the model's pixel range. Every operator provides
``forward`` (A), ``adjoint`` (Aᵀ, exact: ``<A x, u> = <x, Aᵀ u>``) and, where it is cheap,
``pinv`` (A⁺, the Moore–Penrose pseudo-inverse, optionally truncated by ``rtol``).
Users can bring their own pair with :class:`CustomOperator`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor


class LinearOperator(ABC):
    """A known linear degradation with its adjoint."""

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """A x."""

    @abstractmethod
    def adjoint(self, y: Tensor) -> Tensor:
        """Aᵀ y."""

    @property
    def has_pinv(self) -> bool:
        return True

    def pinv(self, y: Tensor) -> Tensor:
        """A⁺ y (raises ValueError when the operator has no cheap pseudo-inverse)."""
        raise ValueError(f"{type(self).__name__} has no pseudo-inverse")

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def measured(self, y: Tensor) -> Tensor:
        """Weights (0 or 1, broadcastable to ``y``) of the entries of ``y`` that are measurements.

        All of them, except for masks, whose zero-filled missing pixels are not measured.
        """
        return torch.ones((), dtype=y.dtype, device=y.device)


def _pinv(matrix: Tensor, rtol: float) -> Tensor:
    return torch.linalg.pinv(matrix, rtol=rtol)


class SeparableOperator(LinearOperator):
    """``A X = R X Cᵀ`` on the last two dimensions: SR (pooling, bicubic) and separable blur."""

    def __init__(self, rows: Tensor, cols: Tensor, *, rtol: float = 1e-6) -> None:
        self.rows, self.cols = rows.to(torch.float64), cols.to(torch.float64)
        self.rows_pinv, self.cols_pinv = _pinv(self.rows, rtol), _pinv(self.cols, rtol)
        self.in_size = (self.rows.shape[1], self.cols.shape[1])

    def _apply(self, left: Tensor, x: Tensor, right: Tensor) -> Tensor:
        return left.to(x) @ x @ right.to(x).T

    def _check(self, x: Tensor, size: tuple[int, int], what: str) -> None:
        if tuple(x.shape[-2:]) != size:
            raise ValueError(f"{what} has spatial size {tuple(x.shape[-2:])}, expected {size}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x, self.in_size, "image")
        return self._apply(self.rows, x, self.cols)

    def adjoint(self, y: Tensor) -> Tensor:
        self._check(y, (self.rows.shape[0], self.cols.shape[0]), "measurement")
        return self._apply(self.rows.T, y, self.cols.T)

    def pinv(self, y: Tensor) -> Tensor:
        self._check(y, (self.rows.shape[0], self.cols.shape[0]), "measurement")
        return self._apply(self.rows_pinv, y, self.cols_pinv)


class ConvolutionOperator(LinearOperator):
    """Circular 2-D convolution with any user kernel (computed in the Fourier domain).

    The pseudo-inverse inverts frequencies whose gain exceeds ``rtol`` times the largest gain and
    zeroes the others (the exact Moore–Penrose inverse when no gain is below that threshold).
    """

    def __init__(self, kernel: Tensor, image_size: tuple[int, int], *, rtol: float = 1e-6) -> None:
        kernel = torch.as_tensor(kernel, dtype=torch.float64)
        if kernel.ndim != 2 or any(k > s for k, s in zip(kernel.shape, image_size)):
            raise ValueError(
                f"blur kernel must be 2-D and no larger than the image {image_size}, "
                f"got shape {tuple(kernel.shape)}"
            )
        padded = torch.zeros(image_size, dtype=torch.float64)
        padded[: kernel.shape[0], : kernel.shape[1]] = kernel
        centre = ((kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2)
        self.spectrum = torch.fft.fft2(torch.roll(padded, (-centre[0], -centre[1]), (0, 1)))
        gain = self.spectrum.abs()
        keep = gain > rtol * gain.max()
        self.inverse = torch.where(keep, 1 / torch.where(keep, self.spectrum, 1), 0)
        self.image_size = tuple(image_size)

    def _filter(self, x: Tensor, spectrum: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(f"image has size {tuple(x.shape[-2:])}, expected {self.image_size}")
        cplx = torch.complex128 if x.dtype == torch.float64 else torch.complex64
        return torch.fft.ifft2(torch.fft.fft2(x) * spectrum.to(x.device, cplx)).real.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self._filter(x, self.spectrum)

    def adjoint(self, y: Tensor) -> Tensor:
        return self._filter(y, self.spectrum.conj())

    def pinv(self, y: Tensor) -> Tensor:
        return self._filter(y, self.inverse)


class MaskOperator(LinearOperator):
    """Inpainting: keeps the pixels where ``mask`` is 1 and zero-fills the rest.

    The measurement lives in image space (zero-filled), so A = Aᵀ = A⁺ = diag(mask) and
    ``A Aᵀ`` is the identity on the observed pixels. ``mask`` is (H, W), (1|C, H, W) or
    (B, 1|C, H, W) with values in {0, 1}.
    """

    def __init__(self, mask: Tensor) -> None:
        mask = torch.as_tensor(mask)
        if not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("inpainting mask must contain only 0 (missing) and 1 (observed)")
        self.mask = mask.to(torch.float64)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.mask.to(x)

    adjoint = forward
    pinv = forward

    def measured(self, y: Tensor) -> Tensor:
        return self.mask.to(y)


class ColorizationOperator(LinearOperator):
    """Colourisation: A averages the C channels, Aᵀ replicates divided by C, A⁺ replicates."""

    def __init__(self, channels: int = 3) -> None:
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=-3, keepdim=True)

    def _replicate(self, y: Tensor) -> Tensor:
        return y.expand(*y.shape[:-3], self.channels, *y.shape[-2:]).clone()

    def adjoint(self, y: Tensor) -> Tensor:
        return self._replicate(y) / self.channels

    def pinv(self, y: Tensor) -> Tensor:
        return self._replicate(y)


class IdentityOperator(LinearOperator):
    """Denoising: A = Aᵀ = A⁺ = I."""

    def forward(self, x: Tensor) -> Tensor:
        return x

    adjoint = forward
    pinv = forward


class CustomOperator(LinearOperator):
    """A user-given (A, Aᵀ[, A⁺]) triple of callables; check it with :func:`adjoint_mismatch`."""

    def __init__(
        self,
        forward: Callable[[Tensor], Tensor],
        adjoint: Callable[[Tensor], Tensor],
        pinv: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self._forward, self._adjoint, self._pinv = forward, adjoint, pinv

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(x)

    def adjoint(self, y: Tensor) -> Tensor:
        return self._adjoint(y)

    @property
    def has_pinv(self) -> bool:
        return self._pinv is not None

    def pinv(self, y: Tensor) -> Tensor:
        if self._pinv is None:
            raise ValueError("this custom operator was given no pseudo-inverse")
        return self._pinv(y)


def adjoint_mismatch(
    op: LinearOperator, x: Tensor, generator: torch.Generator | None = None
) -> float:
    """Relative error of the dot-product test ``<A x, u> = <x, Aᵀ u>`` for a random ``u``."""
    ax = op.forward(x)
    u = torch.randn(ax.shape, dtype=ax.dtype, generator=generator)
    lhs, rhs = (ax * u).sum(), (x * op.adjoint(u)).sum()
    return float((lhs - rhs).abs() / lhs.abs().clamp_min(1e-30))


def spectral_norm_sq(
    op: LinearOperator, shape: tuple[int, ...], iterations: int = 100, seed: int = 0
) -> float:
    """λ_max(Aᵀ A) = λ_max(A Aᵀ) by power iteration (float64)."""
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    value = 0.0
    for _ in range(iterations):
        x = x / x.norm()
        x = op.adjoint(op.forward(x))
        value = float(x.norm())
    return value
