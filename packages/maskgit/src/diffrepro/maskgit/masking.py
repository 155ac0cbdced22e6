"""Training-time masking (MVTM): per example r ~ U[0, 1) and exactly ⌈γ(r) N⌉ image tokens
replaced by the mask id, chosen uniformly at random; the class token (position 0) is kept."""

from __future__ import annotations

import torch

from diffrepro.maskgit.schedule import gamma


def mask_counts(ratios: torch.Tensor, num_tokens: int, method: str = "cosine") -> torch.Tensor:
    """⌈γ(r) N⌉ per example (at least 1), int64."""
    g = gamma(ratios.double(), method, num_tokens)
    return torch.ceil(g * num_tokens).long().clamp(1, num_tokens)


def random_mask(
    batch: int, num_tokens: int, method: str = "cosine", *, generator=None, device=None
) -> torch.Tensor:
    """Boolean (B, N): True at ⌈γ(r) N⌉ random positions per row, r ~ U[0, 1)."""
    ratios = torch.rand(batch, generator=generator, dtype=torch.float64)
    counts = mask_counts(ratios, num_tokens, method)
    scores = torch.rand(batch, num_tokens, generator=generator)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return (ranks < counts[:, None]).to(device)


def mask_inputs(
    codes: torch.Tensor,
    labels: torch.Tensor,
    *,
    codebook_size: int,
    mask_id: int,
    method: str = "cosine",
    cond_drop: float = 0.0,
    generator=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input sequence (B, N+1), target sequence (B, N+1), masked (B, N+1)).

    The targets hold the class token at position 0; ``cond_drop`` > 0 replaces the input class
    token by the mask id with that probability (label dropout for classifier-free guidance)."""
    b, n = codes.shape
    cls = (codebook_size + labels).to(codes.dtype)[:, None]
    targets = torch.cat([cls, codes], dim=1)
    masked = torch.zeros(b, n + 1, dtype=torch.bool, device=codes.device)
    masked[:, 1:] = random_mask(b, n, method, generator=generator, device=codes.device)
    inputs = torch.where(masked, torch.full_like(targets, mask_id), targets)
    if cond_drop > 0:
        drop = torch.rand(b, generator=generator).to(codes.device) < cond_drop
        inputs[:, 0] = torch.where(drop, torch.full_like(cls[:, 0], mask_id), inputs[:, 0])
    return inputs, targets, masked
