"""Named restoration tasks: build the operator A for an image size, and simulate measurements.

Measurement noise ``sigma`` is always stated in the model's pixel range [-1, 1]; use
:func:`sigma_from_255` for values given on the 8-bit scale (ADIR's deblurring uses σ = 10 on
[0, 255], i.e. 2·10/255 on [-1, 1]; spec §9.7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor

from .kernels import (
    average_pool_matrix,
    bicubic_matrix,
    circulant_matrix,
    gaussian_taps,
    uniform_taps,
)
from .masks import box_mask, freeform_mask, random_pixel_mask
from .operators import (
    ColorizationOperator,
    ConvolutionOperator,
    IdentityOperator,
    LinearOperator,
    MaskOperator,
    SeparableOperator,
)

TASKS = (
    "sr2",
    "sr4",
    "sr8",
    "sr2_pool",
    "sr4_pool",
    "sr8_pool",
    "deblur_uniform",
    "deblur_gauss",
    "deblur_kernel",
    "inpaint_box",
    "inpaint_free",
    "inpaint_random",
    "colorize",
    "denoise",
)


@dataclass(frozen=True)
class TaskConfig:
    """Parameters of the degradation (defaults: the paper's 5×5 uniform blur, a centred box).

    ``blur_pinv_rtol`` truncates the blur pseudo-inverse (singular values below this fraction of
    the largest are dropped, per axis): the exact A⁺ of a box blur amplifies noise enormously.
    """

    blur_size: int = 5
    blur_std: float = 1.5
    blur_pinv_rtol: float = 0.1
    mask_fraction: float = 0.25
    missing_pixels: float = 0.5
    mask_seed: int = 0


def sigma_from_255(sigma: float) -> float:
    """Convert a noise level on the [0, 255] scale to the model's [-1, 1] range."""
    return 2.0 * sigma / 255.0


def sr_factor(task: str) -> int:
    """The scale factor of an SR task name (1 for every other task)."""
    match = re.fullmatch(r"sr(\d+)(_pool)?", task)
    return int(match.group(1)) if match else 1


def make_operator(
    task: str,
    image_size: int,
    cfg: TaskConfig | None = None,
    *,
    kernel: Tensor | None = None,
    mask: Tensor | None = None,
) -> LinearOperator:
    """The operator of ``task`` for square images of ``image_size`` pixels.

    ``kernel`` is required by ``deblur_kernel``; ``mask`` (1 = observed) replaces the generated
    mask of the inpainting tasks.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    cfg = cfg or TaskConfig()
    if task.startswith("sr"):
        factor = sr_factor(task)
        build = average_pool_matrix if task.endswith("_pool") else bicubic_matrix
        matrix = build(image_size, factor)
        return SeparableOperator(matrix, matrix)
    if task in ("deblur_uniform", "deblur_gauss"):
        taps = (
            uniform_taps(cfg.blur_size) if task == "deblur_uniform" else gaussian_taps(cfg.blur_std)
        )
        matrix = circulant_matrix(image_size, taps)
        return SeparableOperator(matrix, matrix, rtol=cfg.blur_pinv_rtol)
    if task == "deblur_kernel":
        if kernel is None:
            raise ValueError("task deblur_kernel needs a blur kernel (e.g. --kernel kernel.npy)")
        kernel = torch.as_tensor(kernel, dtype=torch.float64)
        size = (image_size, image_size)
        return ConvolutionOperator(kernel / kernel.sum(), size, rtol=cfg.blur_pinv_rtol**2)
    if task.startswith("inpaint"):
        return MaskOperator(mask if mask is not None else _make_mask(task, image_size, cfg))
    if task == "colorize":
        return ColorizationOperator()
    return IdentityOperator()


def _make_mask(task: str, size: int, cfg: TaskConfig) -> Tensor:
    if task == "inpaint_box":
        return box_mask(size, cfg.mask_fraction)
    if task == "inpaint_free":
        return freeform_mask(size, seed=cfg.mask_seed)
    return random_pixel_mask(size, cfg.missing_pixels, seed=cfg.mask_seed)


def measure(
    op: LinearOperator, x: Tensor, sigma: float = 0.0, generator: torch.Generator | None = None
) -> Tensor:
    """A noisy measurement ``y = A x + σ e`` (σ on the [-1, 1] scale)."""
    clean = op.forward(x)
    if sigma == 0:
        return clean
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype).to(clean.device)
    if isinstance(op, MaskOperator):
        noise = op.forward(noise)
    return clean + sigma * noise
