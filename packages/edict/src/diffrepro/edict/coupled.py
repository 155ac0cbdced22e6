"""EDICT's coupled transformations: the exact-inverse pair of DDIM sequences (x, y).

One denoising step from timestep t to the previous grid point (paper Eq. 14), with the DDIM
step written as the affine map ``a x + b eps`` (:func:`diffrepro.core.samplers.ddim_affine`)::

    x_inter = a x + b eps(y, t)           (leapfrog: on odd steps y is updated first,
    y_inter = a y + b eps(x_inter, t)      with the roles of x and y swapped)
    x'      = p x_inter + (1 - p) y_inter
    y'      = p y_inter + (1 - p) x'      (the already-mixed x')

Its inverse (Eq. 15) un-mixes, then undoes the two updates in reverse order; every eps is
evaluated at a point already known, so the inverse is exact whatever the network is.

Ordering ("leapfrog", official code only): denoising step ``i`` (index within the ACTIVE list)
updates x first when ``i`` is even. Inversion walks the list backwards and keys its order on the
MIRRORED denoising index ``i = n - 1 - j``. The diffusers community pipeline keys it on the
inversion loop index instead (``i % 2`` in both loops): inversion step ``j`` undoes a step of
parity ``(j + 1) % 2``, which is the mirrored index's parity only when n is even (40 active steps
at S = 50, s = 0.8) and wrong at every step when n is odd (35 at s = 0.7). ``order_key="loop"``
reproduces that behaviour, for the regression test and the README.

``eps(z, timestep) -> Tensor`` is any noise predictor (classifier-free guidance included).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from diffrepro.core.progress import track
from diffrepro.core.samplers import ddim_affine

EpsFn = Callable[[Tensor, int], Tensor]
ORDER_KEYS = ("mirrored", "loop")


@dataclass(frozen=True)
class DDIMStep:
    """One deterministic DDIM step from ``timestep`` to the next grid point: x' = a x + b eps."""

    timestep: int
    a: float
    b: float


def ddim_steps(
    alphas_cumprod: np.ndarray, active: Sequence[int], final_alpha_cumprod: float
) -> list[DDIMStep]:
    """The steps over a DESCENDING active grid; the last one goes to ``final_alpha_cumprod``."""
    grid = [int(t) for t in active]
    steps = []
    for k, t in enumerate(grid):
        prev = alphas_cumprod[grid[k + 1]] if k + 1 < len(grid) else final_alpha_cumprod
        steps.append(DDIMStep(t, *ddim_affine(alphas_cumprod[t], prev)))
    return steps


def mix(x_inter: Tensor, y_inter: Tensor, p: float) -> tuple[Tensor, Tensor]:
    """The mixing layer: x' = p x + (1 - p) y, then y' = p y + (1 - p) x'."""
    x = p * x_inter + (1 - p) * y_inter
    y = p * y_inter + (1 - p) * x
    return x, y


def unmix(x: Tensor, y: Tensor, p: float) -> tuple[Tensor, Tensor]:
    """The exact inverse of :func:`mix`."""
    y_inter = (y - (1 - p) * x) / p
    x_inter = (x - (1 - p) * y_inter) / p
    return x_inter, y_inter


def x_first(i: int, leapfrog: bool = True) -> bool:
    """Whether denoising step ``i`` (index in the active list) updates x before y."""
    return not leapfrog or i % 2 == 0


def denoise_step(
    eps: EpsFn, x: Tensor, y: Tensor, step: DDIMStep, p: float, x_goes_first: bool
) -> tuple[Tensor, Tensor]:
    """One coupled denoising step (Eq. 14) followed by the mixing layer."""
    a, b, t = step.a, step.b, step.timestep
    if x_goes_first:
        x_inter = a * x + b * eps(y, t)
        y_inter = a * y + b * eps(x_inter, t)
    else:
        y_inter = a * y + b * eps(x, t)
        x_inter = a * x + b * eps(y_inter, t)
    return mix(x_inter, y_inter, p)


def invert_step(
    eps: EpsFn, x: Tensor, y: Tensor, step: DDIMStep, p: float, x_goes_first: bool
) -> tuple[Tensor, Tensor]:
    """The exact inverse of :func:`denoise_step` (Eq. 15): un-mix, then undo in reverse order."""
    a, b, t = step.a, step.b, step.timestep
    x_inter, y_inter = unmix(x, y, p)
    if x_goes_first:  # y was updated last: undo it first
        y = (y_inter - b * eps(x_inter, t)) / a
        x = (x_inter - b * eps(y, t)) / a
    else:
        x = (x_inter - b * eps(y_inter, t)) / a
        y = (y_inter - b * eps(x, t)) / a
    return x, y


def edict_denoise(
    eps: EpsFn,
    x: Tensor,
    y: Tensor,
    steps: Sequence[DDIMStep],
    *,
    p: float = 0.93,
    leapfrog: bool = True,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Run the coupled denoising chain over ``steps`` (descending timesteps)."""
    for i, step in enumerate(track(steps, disable=not progress, desc="edict denoise")):
        x, y = denoise_step(eps, x, y, step, p, x_first(i, leapfrog))
    return x, y


def edict_invert(
    eps: EpsFn,
    x: Tensor,
    y: Tensor,
    steps: Sequence[DDIMStep],
    *,
    p: float = 0.93,
    leapfrog: bool = True,
    order_key: str = "mirrored",
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Invert :func:`edict_denoise` over the same ``steps``: clean (x, y) -> noisy (x, y)."""
    if order_key not in ORDER_KEYS:
        raise ValueError(f"order_key must be one of {ORDER_KEYS}, got {order_key!r}")
    n = len(steps)
    for j in track(range(n), disable=not progress, desc="edict invert"):
        i = n - 1 - j
        key = i if order_key == "mirrored" else j + 1
        x, y = invert_step(eps, x, y, steps[i], p, x_first(key, leapfrog))
    return x, y
