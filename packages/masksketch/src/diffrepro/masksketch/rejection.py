"""Best-of-K rejection of candidates with a pluggable scorer (spec §3.5).

The paper ranks candidates (several seeds and CFG scales) by a CLIP score; that code is not
released and its target is unverified. A scorer here is any ``scorer(generated) -> (B·K,)``
tensor, higher = better:

- :func:`structure_scorer`: minus the structure distance to the sketch;
- :func:`classifier_scorer`: log p(target class) under any image classifier (the demo uses the
  core emoji judge's coarse-class head);
- :func:`random_scorer`: a seeded random pick (the control).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffrepro.masksketch.generation import SketchGenerated, sketch_distance

Scorer = Callable[[SketchGenerated], torch.Tensor]


def structure_scorer(model, cfg) -> Scorer:
    return lambda gen: -sketch_distance(model, gen, cfg)


def classifier_scorer(class_logits: Callable[[torch.Tensor], torch.Tensor]) -> Scorer:
    """``class_logits(images in [0, 1]) -> (B·K, C)``."""

    def score(gen: SketchGenerated) -> torch.Tensor:
        log_p = torch.log_softmax(class_logits(gen.images).double(), dim=-1)
        return log_p.gather(-1, gen.labels.to(log_p.device)[:, None])[:, 0]

    return score


def random_scorer(generator: torch.Generator | None = None) -> Scorer:
    return lambda gen: torch.rand(len(gen.images), generator=generator, dtype=torch.float64)


def best_of_k(scores: torch.Tensor, candidates: int) -> torch.Tensor:
    """Row indices (B,) of the highest score within each group of ``candidates`` rows."""
    if scores.dim() != 1 or len(scores) % candidates:
        raise ValueError(
            f"scores must be (B·K,) with K = {candidates}, got shape {tuple(scores.shape)}"
        )
    if not bool(torch.isfinite(scores).all()):
        raise FloatingPointError("a candidate score is not finite")
    groups = scores.view(-1, candidates)
    return groups.argmax(dim=-1).cpu() + torch.arange(len(groups)) * candidates


def select(gen: SketchGenerated, scorer: Scorer) -> tuple[torch.Tensor, torch.Tensor]:
    """(the best image of each sketch (B, 3, H, W), their row indices (B,))."""
    index = best_of_k(scorer(gen).cpu(), gen.candidates)
    return gen.images[index], index
