"""SDM as a method of ``diffrepro compare restoration`` (contract: core ``compare.restoring``).

``restore`` ignores the shared pixel DDPM: it loads this package's own generator, the zoo entry
``sdm-emoji`` (``build=False``: a missing build is the zoo's one-line ``FileNotFoundError``, which
the comparison records as a failed cell), and inpaints ``problem.measurement`` where
``problem.mask`` = 0 with the demo's iteration count (``ITERATIONS``); the sampler's ``steps``
do not apply to SDM's few iterations and are ignored. Known pixels are the measurement's, kept
exactly; the evaluation count is the generator's forward rows (one per iteration).
:func:`sdm_restore` takes the generator explicitly (tests use a tiny one).
"""

from __future__ import annotations

import torch
from torch import nn

from diffrepro.core.compare.restoring import (
    InpaintingProblem,
    RestorationMethod,
    RestorationResult,
    count_evals,
)

ITERATIONS = 4  # the demo's headline test-time T (DecodeConfig's default)


def sdm_restore(
    generator: nn.Module, problem: InpaintingProblem, *, seed: int, iterations: int = ITERATIONS
) -> RestorationResult:
    """Inpaint ``problem`` with ``generator`` in ``iterations`` predict → pick → sample steps."""
    from diffrepro.sdm.decoding import DecodeConfig, inpaint

    image = problem.measurement
    mask = problem.mask[:, :1]
    resolution = generator.cfg.resolution
    if tuple(image.shape[-2:]) != (resolution, resolution):
        raise ValueError(
            f"sdm: the problem is {image.shape[-1]}×{image.shape[-2]}; the generator takes "
            f"{resolution}×{resolution}"
        )
    if bool(mask.all()):  # nothing to fill: no iteration runs
        return RestorationResult(image.clone(), 0)
    generator_rng = torch.Generator(device=image.device).manual_seed(seed)
    with torch.no_grad(), count_evals(generator) as evals:
        steps = inpaint(generator, image, mask, DecodeConfig(steps=iterations), generator_rng)
    return RestorationResult(steps[-1].image, evals[0])


def restore(base, problem: InpaintingProblem, *, seed: int, steps: int) -> RestorationResult:
    """The contract's restore: ``sdm-emoji`` from the zoo (never built here); ``base`` unused."""
    from diffrepro.core import zoo
    from diffrepro.sdm.emoji_model import NAME

    generator = zoo.load(NAME, device=str(problem.measurement.device), build=False)
    return sdm_restore(generator, problem, seed=seed)


def restoration_methods() -> list[RestorationMethod]:
    return [
        RestorationMethod(
            "sdm",
            f"SDM / PSM, {ITERATIONS} iterations (zoo sdm-emoji)",
            restore,
            package="diffrepro-sdm",
        )
    ]
