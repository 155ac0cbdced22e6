"""Scores of a restoration: PSNR and SSIM against the clean image, and the measurement residual."""

from __future__ import annotations

from torch import Tensor

from diffrepro.core.metrics import psnr, ssim

from .operators import LinearOperator


def measurement_residual(op: LinearOperator, x_hat: Tensor, y: Tensor) -> Tensor:
    """RMS of A x̂ - y per image (on the [-1, 1] scale: compare with the noise σ)."""
    return (op.forward(x_hat) - y).flatten(1).square().mean(dim=1).sqrt()


def scores(
    op: LinearOperator, x_hat: Tensor, y: Tensor, clean: Tensor | None = None
) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and residual over the batch; PSNR/SSIM only when ``clean`` is known."""
    out = {"residual": float(measurement_residual(op, x_hat, y).mean())}
    if clean is not None:
        out["psnr"] = float(psnr(x_hat, clean).mean())
        if min(clean.shape[-2:]) >= 11:
            out["ssim"] = float(ssim(x_hat, clean).mean())
    return out
