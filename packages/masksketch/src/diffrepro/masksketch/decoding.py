"""Structure-guided parallel decoding (official ``parallel_decode_with_structure_similarity``).

Sequences hold the class token at position 0 and image tokens at 1..N. From the sketch
sequence x (complete) and a start y⁽⁰⁾ with N0 masked image positions, each step t = 0..T-1:

1. ℓ = logits_fn(y⁽ᵗ⁾) sliced to the K image codes (classifier-free guided, see ``guidance``);
2. ŷ_i ~ Cat(softmax(ℓ_i)) at the masked positions, the other tokens kept;
3. S̃ = rescale(-D(A(x), A(ŷ))) per token (``structure``), A from the complete ŷ;
4. p_i = softmax(ℓ_i)[ŷ_i] at every image position (kept tokens too), min-max rescaled;
5. n_t, k_s = ⌊λs n_t⌋, k_c = ⌊(1 - λs) n_t⌋ (``budget``);
6. M = (k_s lowest S̃) ∨ (k_c lowest p), over the image positions; the class token is never
   masked. *Any* image token can be re-masked, including earlier samples and the visible
   sketch tokens (unlike MaskGIT, where revealed tokens stay);
7. y⁽ᵗ⁺¹⁾ = ŷ with M set to the mask id.

The output is the last step's ŷ (complete). Deviations from the official code, all documented
in the README: both rankings exclude the class position (the code ranks it for structure and
then forces it unmasked), ties are broken by position (exactly k per mask), and with a
temperature > 0 the noisy scores are ranked (the code compares noise-free scores against a
noisy cut-off) with separate random draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffrepro.maskgit.decoding import gumbel, sample_categorical
from diffrepro.masksketch.attention import AttentionFn
from diffrepro.masksketch.budget import split_budget, step_budget
from diffrepro.masksketch.config import MaskSketchConfig
from diffrepro.masksketch.structure import image_distance, rescale, structure_scores

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SketchDecodeResult:
    """``tokens`` (B, L): the last step's complete ŷ. ``sequences`` (B, T, L): ŷ of every step;
    ``masked`` (B, T, L): the mask M chosen at every step; ``budgets`` (T, B, 3): n_t, k_s, k_c;
    ``distance`` (B,): the image-level structure distance of ``tokens`` to the sketch."""

    tokens: torch.Tensor
    sequences: torch.Tensor
    masked: torch.Tensor
    budgets: torch.Tensor
    distance: torch.Tensor


def lowest_k(
    scores: torch.Tensor, k: torch.Tensor, temperature: float = 0.0, generator=None
) -> torch.Tensor:
    """True at the ``k`` (B,) lowest entries of each row of ``scores`` (B, N) (ties: by index);
    with ``temperature`` > 0, of ``scores + temperature · g``, g ~ Gumbel(0, 1)."""
    if temperature > 0:
        noise = gumbel(scores.shape, generator=generator, device=scores.device, dtype=scores.dtype)
        scores = scores + temperature * noise
    ranks = scores.argsort(dim=-1, stable=True).argsort(dim=-1)
    return ranks < k.to(scores.device)[:, None]


def initial_tokens(sketch: torch.Tensor, n0: int, mask_id: int, generator=None) -> torch.Tensor:
    """y⁽⁰⁾: the sketch sequence (B, L) with ``n0`` random image positions per row masked (a
    different random set per row); the class token and the other sketch tokens are kept."""
    b, length = sketch.shape
    if not 0 <= n0 <= length - 1:
        raise ValueError(f"cannot mask {n0} of {length - 1} image tokens")
    draw = torch.rand(b, length - 1, generator=generator, device=generator_device(generator))
    masked = draw.to(sketch.device).argsort(dim=-1).argsort(dim=-1) < n0
    start = sketch.clone()
    start[:, 1:] = torch.where(masked, torch.full_like(sketch[:, 1:], mask_id), sketch[:, 1:])
    return start


def generator_device(generator) -> torch.device | None:
    return generator.device if generator is not None else None


def confidence(logits: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
    """p_i = softmax(ℓ_i)[ŷ_i] at the image positions (B, N), min-max rescaled."""
    probs = torch.softmax(logits[:, 1:].double(), dim=-1)
    chosen = probs.gather(-1, sampled[:, 1:, None].clamp(0, logits.shape[-1] - 1))[..., 0]
    return rescale(chosen)


def step_masks(
    structure: torch.Tensor,
    conf: torch.Tensor,
    n0: torch.Tensor,
    step: int,
    cfg: MaskSketchConfig,
    generator=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(M over the whole sequence (B, L), budgets (B, 3) = n_t, k_s, k_c) for one step.
    ``structure`` (B, L) and ``conf`` (B, N) are the rescaled scores."""
    rows = []
    for n in n0.tolist():
        n_t = step_budget(n, step, cfg.num_iter, cfg.min_mask_rate, cfg.max_mask_rate, cfg.schedule)
        rows.append((n_t, *split_budget(n_t, cfg.lambda_structure)))
    budget = torch.tensor(rows, dtype=torch.long)
    by_structure = lowest_k(structure[:, 1:], budget[:, 1], cfg.temperature_structure, generator)
    by_confidence = lowest_k(conf, budget[:, 2], cfg.temperature_confidence, generator)
    mask = torch.zeros_like(structure, dtype=torch.bool)
    mask[:, 1:] = by_structure | by_confidence
    return mask, budget


@torch.no_grad()
def decode(
    logits_fn: LogitsFn,
    attention: AttentionFn,
    sketch: torch.Tensor,
    start: torch.Tensor,
    *,
    mask_id: int,
    codebook_size: int,
    config: MaskSketchConfig,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> SketchDecodeResult:
    """Decode ``start`` (B, L) guided by the structure of the complete ``sketch`` (B, L)."""
    if sketch.shape != start.shape or sketch.dim() != 2:
        raise ValueError(
            f"sketch and start sequences must both be (batch, length), got "
            f"{tuple(sketch.shape)} and {tuple(start.shape)}"
        )
    if bool((sketch == mask_id).any()):
        raise ValueError("the sketch sequence must be complete (no mask id)")
    target = attention(sketch)
    n0 = (start[:, 1:] == mask_id).sum(dim=-1)
    cur = start.clone()
    outputs, masks, budgets = [], [], []
    for step in range(config.num_iter):
        logits = logits_fn(cur)[..., :codebook_size]
        unknown = cur == mask_id
        sampled = torch.where(unknown, sample_categorical(logits, generator), cur)
        pred = attention(sampled)
        structure = structure_scores(target, pred, config.structure_mode)
        mask, budget = step_masks(
            structure, confidence(logits, sampled), n0, step, config, generator
        )
        outputs.append(sampled)
        masks.append(mask)
        budgets.append(budget)
        cur = torch.where(mask, torch.full_like(sampled, mask_id), sampled)
        if progress is not None:
            progress(step + 1)
    return SketchDecodeResult(
        tokens=outputs[-1],
        sequences=torch.stack(outputs, dim=1),
        masked=torch.stack(masks, dim=1),
        budgets=torch.stack(budgets),
        distance=image_distance(target, pred, config.structure_mode),
    )
