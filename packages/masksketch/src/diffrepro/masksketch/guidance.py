"""Classifier-free guidance for a MaskGIT trained without label dropout (spec §3.4 step 1).

ℓ = ℓc + s (ℓc - ℓu), where ℓu comes from the same sequences with the class token replaced by
one random *real* class id in [K, K + C), drawn once per call. ``rows="all"`` writes it into
every batch row (the fix); ``rows="first-two"`` mimics the official quirk, whose (2, 1) update
reaches only rows 0-1, so rows 2.. get ℓu = ℓc, i.e. no guidance.
"""

from __future__ import annotations

import torch

from diffrepro.maskgit.decoding import unconditional_token


def uncond_class(codebook_size: int, num_classes: int, generator=None) -> int:
    """A random real class id in [K, K + C) (MaskGIT has no null class)."""
    return unconditional_token(
        "random-class",
        codebook_size=codebook_size,
        num_classes=num_classes,
        mask_id=codebook_size + num_classes,
        generator=generator,
    )


def unconditional_sequences(tokens: torch.Tensor, uncond: int, rows: str = "all") -> torch.Tensor:
    """``tokens`` (B, L) with the class position replaced by ``uncond`` in the chosen rows."""
    out = tokens.clone()
    if rows == "all":
        out[:, 0] = uncond
    elif rows == "first-two":
        out[:2, 0] = uncond
    else:
        raise ValueError(f"guidance rows must be 'all' or 'first-two', got {rows!r}")
    return out


def guided_logits(model, scale: float, uncond: int, rows: str = "all"):
    """``tokens -> ℓc + s (ℓc - ℓu)`` in one batched call of 2B rows (s = 0: the model)."""
    if scale == 0:
        return model

    def fn(tokens: torch.Tensor) -> torch.Tensor:
        both = model(torch.cat([tokens, unconditional_sequences(tokens, uncond, rows)]))
        cond, free = both.chunk(2)
        return cond + scale * (cond - free)

    return fn
