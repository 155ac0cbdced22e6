"""Tokenizer measures: reconstruction error and codebook usage."""

from __future__ import annotations

import math

import torch

from diffrepro.core.metrics import psnr


@torch.no_grad()
def reconstruction_metrics(tokenizer, images: torch.Tensor, batch: int = 256) -> dict[str, float]:
    """MSE and PSNR (images in [0, 1]) of encode → decode."""
    recon = torch.cat(
        [
            tokenizer.decode(tokenizer.encode(images[i : i + batch]))
            for i in range(0, len(images), batch)
        ]
    )
    mse = float((recon - images).pow(2).mean())
    value = float(psnr(recon * 2 - 1, images * 2 - 1).mean())
    if not (math.isfinite(mse) and math.isfinite(value)):
        raise FloatingPointError("the tokenizer's reconstruction error is not finite")
    return {"recon_mse": mse, "recon_psnr_db": value}


@torch.no_grad()
def codebook_usage(tokenizer, images: torch.Tensor, batch: int = 256) -> dict[str, float]:
    """Fraction of codes used on ``images`` and the perplexity of the code distribution."""
    codes = torch.cat(
        [tokenizer.encode(images[i : i + batch]).flatten() for i in range(0, len(images), batch)]
    )
    k = tokenizer.config.codebook_size
    p = torch.bincount(codes, minlength=k).double() / codes.numel()
    perplexity = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    return {
        "codebook_used": float((p > 0).double().mean()),
        "codebook_perplexity": perplexity,
        "codebook_size": k,
    }
