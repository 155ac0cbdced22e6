"""Iterative parallel decoding, exactly as the official ``libml/parallel_decode.decode``.

A sequence holds the class token at position 0 (known) and the mask id at every unknown image
position. With N0 unknown tokens at the start, each step t = start_iter..T-1:

1. logits = f(current), sliced to the K image codes;
2. sample ŷ ~ Cat(softmax(logits)) (Gumbel-max) and keep it only where the position is masked;
3. store ŷ as step t's output (the returned sample is the last step's ŷ, before re-masking);
4. r = (t+1)/T; confidence c = log p(ŷ) + τ0 (1 - r) g with g ~ Gumbel(0, 1), and c = +inf where
   the position was already known at the start of the step;
5. n_t = max(1, min(U_t - 1, ⌊N0 γ(r)⌋)) with U_t the tokens masked at the start of the step;
6. re-mask the positions whose confidence is strictly below the (n_t+1)-th smallest value, i.e.
   exactly the n_t least confident ones. Revealed tokens are never masked again (+inf).

The model is any ``logits_fn(tokens) -> (B, L, V)`` callable, so MaskSketch or a test stub can
drive the same loop. :func:`guided` wraps one with classifier-free guidance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffrepro.maskgit.schedule import canonical, check_iterations, gamma

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DecodeConfig:
    """``choice_temperature`` τ0 (official 4.5) scales the Gumbel noise on the confidence;
    ``start_iter`` > 0 is the editing case (official demo: 12 steps starting at 2).
    ``guidance_scale`` s > 0 turns on classifier-free guidance ℓ = ℓc + s (ℓc - ℓu) (not in
    MaskGIT; an option), with ℓu from a random real class (``random-class``, MaskSketch's choice,
    for models trained without label dropout) or from the mask id at the class position
    (``mask``, for models trained with ``cond_drop`` > 0)."""

    num_iter: int = 8
    schedule: str = "cosine"
    choice_temperature: float = 4.5
    start_iter: int = 0
    guidance_scale: float = 0.0
    guidance_uncond: str = "random-class"

    def __post_init__(self) -> None:
        check_iterations(self.num_iter, self.start_iter)
        canonical(self.schedule)
        if not math.isfinite(self.choice_temperature) or self.choice_temperature < 0:
            raise ValueError(f"choice_temperature must be >= 0, got {self.choice_temperature}")
        if not math.isfinite(self.guidance_scale) or self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        if self.guidance_uncond not in ("random-class", "mask"):
            raise ValueError(
                f"guidance_uncond must be 'random-class' or 'mask', got {self.guidance_uncond!r}"
            )


@dataclass
class DecodeResult:
    """``tokens`` (B, L): the sample (the last step's ŷ, complete). ``sequences`` (B, S, L): ŷ
    of each of the S = T - start_iter steps. ``masked`` (B, S, L): positions still masked after
    each step's re-masking. ``steps``: model calls made."""

    tokens: torch.Tensor
    sequences: torch.Tensor
    masked: torch.Tensor
    steps: int


def gumbel(shape, *, generator, device, dtype) -> torch.Tensor:
    """Standard Gumbel noise -log(-log u), u ~ U(tiny, 1)."""
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return -torch.log(-torch.log(u.clamp_min(torch.finfo(dtype).tiny)))


def sample_categorical(logits: torch.Tensor, generator=None) -> torch.Tensor:
    """One draw per row of Cat(softmax(logits)) by the Gumbel-max trick (as jax.random)."""
    noise = gumbel(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    return (logits + noise).argmax(dim=-1)


def mask_by_random_topk(
    mask_len: torch.Tensor,
    log_probs: torch.Tensor,
    temperature: float,
    generator=None,
) -> torch.Tensor:
    """True at the ``mask_len`` (B, 1) positions of lowest ``log_probs + temperature · g``.

    The cut-off is the (mask_len+1)-th smallest confidence and the comparison is strict, as in
    the official code; +inf confidences are never selected.
    """
    confidence = log_probs
    if temperature > 0:
        noise = gumbel(
            log_probs.shape, generator=generator, device=log_probs.device, dtype=log_probs.dtype
        )
        confidence = log_probs + temperature * noise
    ordered = confidence.sort(dim=-1).values
    length = confidence.shape[-1]
    cut = ordered.gather(-1, mask_len.clamp(max=length - 1))
    cut = torch.where(mask_len >= length, torch.full_like(cut, math.inf), cut)
    return confidence < cut


def mask_lengths(
    total_unknown: torch.Tensor, masked_now: torch.Tensor, ratio: float, method: str
) -> torch.Tensor:
    """n_t = max(1, min(U_t - 1, ⌊N0 γ(r)⌋)) per row, shape (B, 1), int64."""
    target = torch.tensor(
        [math.floor(n * gamma(ratio, method, n)) for n in total_unknown.tolist()],
        device=masked_now.device,
    )
    return torch.clamp(torch.minimum(masked_now - 1, target), min=1)[:, None]


@torch.no_grad()
def decode(
    logits_fn: LogitsFn,
    tokens: torch.Tensor,
    *,
    mask_id: int,
    codebook_size: int,
    config: DecodeConfig | None = None,
    generator: torch.Generator | None = None,
) -> DecodeResult:
    """Fill the ``mask_id`` positions of ``tokens`` (B, L) with image codes in [0, K)."""
    cfg = config if config is not None else DecodeConfig()
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be (batch, length), got shape {tuple(tokens.shape)}")
    cur = tokens.clone()
    total_unknown = (cur == mask_id).sum(dim=-1)
    outputs, masks = [], []
    for step in range(cfg.start_iter, cfg.num_iter):
        logits = logits_fn(cur)[..., :codebook_size]
        unknown = cur == mask_id
        sampled = torch.where(unknown, sample_categorical(logits, generator), cur)
        outputs.append(sampled)
        ratio = (step + 1) / cfg.num_iter
        log_probs = torch.log_softmax(logits, dim=-1)
        chosen = log_probs.gather(-1, sampled.clamp(0, codebook_size - 1)[..., None])[..., 0]
        chosen = torch.where(unknown, chosen, torch.full_like(chosen, math.inf))
        mask_len = mask_lengths(total_unknown, unknown.sum(dim=-1), ratio, cfg.schedule)
        temperature = cfg.choice_temperature * (1.0 - ratio)
        remask = mask_by_random_topk(mask_len.to(cur.device), chosen, temperature, generator)
        cur = torch.where(remask, torch.full_like(sampled, mask_id), sampled)
        masks.append(cur == mask_id)
    return DecodeResult(
        tokens=outputs[-1],
        sequences=torch.stack(outputs, dim=1),
        masked=torch.stack(masks, dim=1),
        steps=len(outputs),
    )


def guided(
    logits_fn: LogitsFn,
    scale: float,
    uncond_token: torch.Tensor | int,
    *,
    class_position: int = 0,
) -> LogitsFn:
    """Classifier-free guidance ℓc + s (ℓc - ℓu) in one batched call (2B rows).

    ``uncond_token`` (an int or (B,) tensor) replaces the class token of *every* row for ℓu (the
    official MaskSketch code replaced only rows 0-1). s = 0 returns ``logits_fn`` itself.
    """
    if scale == 0:
        return logits_fn

    def fn(tokens: torch.Tensor) -> torch.Tensor:
        uncond = tokens.clone()
        uncond[:, class_position] = torch.as_tensor(uncond_token, device=tokens.device)
        both = logits_fn(torch.cat([tokens, uncond]))
        cond, free = both.chunk(2)
        return cond + scale * (cond - free)

    return fn


def unconditional_token(
    mode: str, *, codebook_size: int, num_classes: int, mask_id: int, generator=None
) -> int:
    """The class-position token of the unconditional branch: a random real class id in
    [K, K+C) drawn once per call (``random-class``) or the mask id (``mask``)."""
    if mode == "mask":
        return mask_id
    if num_classes < 1:
        raise ValueError("random-class guidance needs a class-conditional model")
    device = generator.device if generator is not None else None
    offset = torch.randint(num_classes, (1,), generator=generator, device=device)
    return codebook_size + int(offset)


@torch.no_grad()
def decode_autoregressive(
    logits_fn: LogitsFn,
    tokens: torch.Tensor,
    *,
    mask_id: int,
    codebook_size: int,
    generator: torch.Generator | None = None,
) -> DecodeResult:
    """The raster-order AR baseline: one model call per unknown position, left to right.

    ``logits_fn`` is a causal model whose output at position j predicts token j+1; known tokens
    are kept (teacher-forced), so the call count equals the number of masked positions.
    """
    cur = tokens.clone()
    unknown_cols = (cur == mask_id).any(dim=0).nonzero().flatten().tolist()
    if 0 in unknown_cols:
        raise ValueError("position 0 (the class token) cannot be generated autoregressively")
    steps = []
    for col in unknown_cols:
        logits = logits_fn(cur[:, :col])[:, -1, :codebook_size]
        sampled = sample_categorical(logits, generator)
        cur[:, col] = torch.where(cur[:, col] == mask_id, sampled, cur[:, col])
        steps.append(cur.clone())
    seq = torch.stack(steps, dim=1) if steps else cur[:, None]
    masked = seq == mask_id
    return DecodeResult(tokens=cur, sequences=seq, masked=masked, steps=len(unknown_cols))
