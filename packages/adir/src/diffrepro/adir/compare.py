"""ADIR for ``diffrepro compare restoration`` (contract: ``diffrepro.core.compare.restoring``).

Two methods on noisy inpainting problems (known pixels ``mask ⊙ (x + σ n)``, mask 1 = known):

- ``guided``: ADIR's guided DDPM sampling with the base model, no adaptation: ``steps`` respaced
  steps of the base schedule from pure noise (as the paper samples), the plain ADIR step with
  s = 1/λ_max(AAᵀ) = 1 for a mask, then the final projection to the noise level
  (``guidance.final = "discrepancy"``: the known pixels' RMS residual is brought down to σ).
- ``adir``: retrieve the K = 8 corpus images nearest to the measurement (offline thumbnail
  embedder on the zero-filled measurement; the corpus never holds the test image), fine-tune
  LoRA (r = 16, α = 8, every conv) on a copy of the base UNet for :data:`COMPARE_ADAPT`'s
  16 iterations of batch 6 (≈ 7 s on one core for emoji-ddpm), then the same guided sampling.

``network_evals`` counts the batch rows of every UNet forward call, adaptation included
(16 × 6 = 96 rows plus ``steps``). The same seed gives the same restoration; ``base`` is never
modified (the adapted network is a deep copy).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from diffrepro.core.compare.restoring import (
    InpaintingProblem,
    RestorationMethod,
    RestorationResult,
    count_evals,
)
from diffrepro.core.schedules import space_timesteps

from .adapt import adapt_in_place
from .config import AdaptConfig, ADIRConfig
from .embedders import ThumbnailEmbedder
from .guidance import GuidanceConfig
from .operators import MaskOperator
from .restore import guided_sample, retrieve_rows
from .retrieval import tensor_index

COMPARE_ADAPT = AdaptConfig(k=8, rank=16, alpha=8.0, lr=1e-3, iterations=16, batch_size=6)
PACKAGE = "diffrepro-adir"


def _generator(seed: int, stream: int, device) -> torch.Generator:
    state = int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


def _config(base, problem: InpaintingProblem) -> ADIRConfig:
    return ADIRConfig(
        unet=base.unet.config,
        diffusion_steps=len(base.schedule),
        noise_sigma=problem.sigma,
        guidance=GuidanceConfig(scale=1.0, final="discrepancy"),
        adapt=COMPARE_ADAPT,
    )


def _sample(unet, base, problem: InpaintingProblem, cfg: ADIRConfig, seed: int, steps: int):
    if not 1 <= steps <= len(base.schedule):
        raise ValueError(f"steps must lie in [1, {len(base.schedule)}], got {steps}")
    chain = base.schedule.respace(space_timesteps(len(base.schedule), [steps]))
    op = MaskOperator(problem.mask[0, :1])
    y = problem.measurement
    gen = _generator(seed, 3, y.device)
    with torch.no_grad():
        out = guided_sample(unet, op, y, tuple(y.shape), cfg, schedule=chain, generator=gen)
    return out.clamp(-1, 1)


def guided(base, problem: InpaintingProblem, *, seed: int, steps: int) -> RestorationResult:
    """ADIR's guided sampling with the base model (no adaptation)."""
    cfg = _config(base, problem)
    with count_evals(base.unet) as evals:
        out = _sample(base.unet, base, problem, cfg, seed, steps)
    return RestorationResult(out, evals[0])


def adir(base, problem: InpaintingProblem, *, seed: int, steps: int) -> RestorationResult:
    """Retrieve K neighbours from ``problem.corpus``, adapt a copy of the UNet, then sample."""
    cfg = _config(base, problem)
    op = MaskOperator(problem.mask[0, :1])
    embedder = ThumbnailEmbedder()
    corpus = problem.corpus.to(problem.measurement.device)
    k = min(cfg.adapt.k, len(corpus))
    index = tensor_index(corpus.cpu(), embedder)
    rows = retrieve_rows(index, embedder, op, problem.measurement.cpu(), k)
    unet = copy.deepcopy(base.unet)
    with count_evals(unet) as evals:
        adapt_in_place(
            unet,
            corpus[rows],
            base.schedule,
            cfg.adapt,
            generator=_generator(seed, 1, "cpu"),
        )
        out = _sample(unet, base, problem, cfg, seed, steps)
    return RestorationResult(out, evals[0])


def restoration_methods() -> list[RestorationMethod]:
    return [
        RestorationMethod(
            "guided", "ADIR guided sampling (no adaptation)", guided, package=PACKAGE
        ),
        RestorationMethod(
            "adir", "ADIR: LoRA on K retrieved neighbours + guided sampling", adir, package=PACKAGE
        ),
    ]
