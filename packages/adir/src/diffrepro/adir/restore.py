"""One restoration: baseline, K-NN retrieval, LoRA adaptation and ADIR guided sampling."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from diffrepro.core.samplers import per_sample_noise, sample_ddpm

from .adapt import adapted_copy
from .config import ADIRConfig
from .embedders import Embedder
from .guidance import adir_callback, eps_at_index
from .images import load_image
from .model import sampling_schedule, train_schedule
from .operators import LinearOperator
from .retrieval import RetrievalIndex


def naive_baseline(op: LinearOperator, y: Tensor) -> Tensor:
    """A⁺ y (Aᵀ y when there is no pseudo-inverse), clamped to the pixel range."""
    return (op.pinv(y) if op.has_pinv else op.adjoint(y)).clamp(-1, 1)


def guided_sample(
    model: nn.Module,
    op: LinearOperator,
    y: Tensor,
    shape: Sequence[int],
    cfg: ADIRConfig,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """DDPM ancestral sampling with the ADIR step as the per-step callback."""
    schedule = sampling_schedule(cfg)
    eps_model = None
    if cfg.guidance.eps_source == "reevaluate":
        eps_model = eps_at_index(model, schedule, variance=cfg.variance)
    callback = adir_callback(op, y, cfg.guidance, noise_sigma=cfg.noise_sigma, eps_model=eps_model)
    device = next(model.parameters()).device
    x_T = per_sample_noise(shape, generator, device)
    return sample_ddpm(
        model,
        x_T,
        schedule,
        variance=cfg.variance,
        clip_x0=cfg.clip_x0,
        generator=generator,
        callback=callback,
        progress=progress,
    )


def retrieve(
    index: RetrievalIndex,
    embedder: Embedder,
    op: LinearOperator,
    y: Tensor,
    k: int,
    *,
    method: str = "kdtree",
    exclude: Sequence[str | Path] = (),
) -> list[str]:
    """Paths of the K corpus images nearest to the degraded image (shown at full size, A⁺ y)."""
    if embedder.name != index.embedder:
        raise ValueError(
            f"the index was built with embedder {index.embedder!r}, not {embedder.name!r}; "
            "rebuild it or pass the same --clip folder"
        )
    query = embedder(naive_baseline(op, y)).float().cpu().numpy()
    rows = index.search(query, k, method=method, exclude=index.excluded(exclude))
    return [index.paths[i] for i in rows[0]]


@dataclass(frozen=True)
class Restoration:
    baseline: Tensor
    restored: Tensor
    neighbours: tuple[str, ...]


def restore(
    model: nn.Module,
    op: LinearOperator,
    y: Tensor,
    image_size: int,
    cfg: ADIRConfig,
    *,
    index: RetrievalIndex | None = None,
    embedder: Embedder | None = None,
    exclude: Sequence[str | Path] = (),
    generator: torch.Generator | None = None,
    progress: bool = False,
    log: Callable[[int, float], None] | None = None,
) -> Restoration:
    """Restore one measurement ``y`` (a batch of 1), adapting on its neighbours given an index."""
    neighbours: list[str] = []
    if cfg.adapt.enabled and index is not None and embedder is not None:
        neighbours = retrieve(
            index, embedder, op, y, cfg.adapt.k, method=cfg.adapt.search, exclude=exclude
        )
        images = torch.stack([load_image(p, image_size) for p in neighbours])
        model = adapted_copy(
            model,
            images,
            train_schedule(cfg),
            cfg.adapt,
            variance=cfg.variance,
            generator=generator,
            log=log,
        )
    shape = (1, cfg.unet.out_channels, image_size, image_size)
    restored = guided_sample(model, op, y, shape, cfg, generator=generator, progress=progress)
    return Restoration(naive_baseline(op, y), restored.clamp(-1, 1), tuple(neighbours))
