"""Training losses: MVTM cross-entropy on masked tokens with the official label smoothing, and
the VQ tokenizer loss (reconstruction + commitment + codebook + the official entropy loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smoothed_targets(
    targets: torch.Tensor, vocab: int, smoothing: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """One-hot targets with the official smoothing: on 1 - ε + ε/V, off ε/V (``apply_label_
    smoothing`` over the full output vocabulary V)."""
    off = smoothing / vocab
    out = torch.full((*targets.shape, vocab), off, device=targets.device, dtype=dtype)
    return out.scatter(-1, targets[..., None], 1.0 - smoothing + off)


def masked_token_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    masked: torch.Tensor,
    *,
    smoothing: float = 0.1,
    masked_only: bool = True,
) -> torch.Tensor:
    """Mean smoothed cross-entropy over the masked positions (all positions if not
    ``masked_only``, the official sweep's ``compute_loss_for_all``)."""
    soft = smoothed_targets(targets, logits.shape[-1], smoothing, logits.dtype)
    per_token = -(soft * torch.log_softmax(logits, dim=-1)).sum(-1)
    weights = masked.to(per_token.dtype) if masked_only else torch.ones_like(per_token)
    total = weights.sum()
    if total == 0:
        raise ValueError("no masked token to compute the loss on")
    return (per_token * weights).sum() / total


def entropy_loss(distances: torch.Tensor, temperature: float = 0.01) -> torch.Tensor:
    """Official ``losses.entropy_loss`` (softmax type) on affinities -d / temperature:
    mean per-sample entropy minus the entropy of the average code distribution."""
    affinity = -distances / temperature
    probs = torch.softmax(affinity, dim=-1)
    log_probs = torch.log_softmax(affinity + 1e-5, dim=-1)
    avg = probs.mean(0)
    avg_entropy = -(avg * torch.log(avg + 1e-5)).sum()
    sample_entropy = -(probs * log_probs).sum(-1).mean()
    return sample_entropy - avg_entropy


def vq_losses(
    out: dict[str, torch.Tensor],
    images: torch.Tensor,
    *,
    commitment: float = 0.25,
    entropy_ratio: float = 0.1,
    entropy_temperature: float = 0.01,
    reconstruction: str = "l2",
) -> dict[str, torch.Tensor]:
    """The terms of the tokenizer loss and their ``total``: rec + β‖sg[zq] - z‖² + ‖zq - sg[z]‖²
    + λ_ent L_ent."""
    if reconstruction == "l2":
        rec = F.mse_loss(out["recon"], images)
    elif reconstruction == "l1":
        rec = F.l1_loss(out["recon"], images)
    else:
        raise ValueError(f"reconstruction must be 'l2' or 'l1', got {reconstruction!r}")
    z, zq = out["z"], out["zq"]
    commit = F.mse_loss(z, zq.detach()) * commitment
    codebook = F.mse_loss(zq, z.detach())
    ent = entropy_loss(out["distances"], entropy_temperature) if entropy_ratio else z.new_zeros(())
    total = rec + commit + codebook + entropy_ratio * ent
    return {
        "total": total,
        "reconstruction": rec,
        "commitment": commit,
        "codebook": codebook,
        "entropy": ent,
    }
