"""One restoration: baseline, K-NN retrieval, LoRA adaptation and ADIR guided sampling."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from diffrepro.core.samplers import per_sample_noise, sample_ddpm
from diffrepro.core.schedules import Schedule

from .adapt import adapted_copy
from .config import ADIRConfig
from .consistency import discrepancy_projection
from .embedders import Embedder
from .guidance import adir_callback, eps_at_index
from .images import load_image
from .model import sampling_schedule, train_schedule
from .operators import LinearOperator
from .retrieval import RetrievalIndex


def naive_baseline(op: LinearOperator, y: Tensor) -> Tensor:
    """A⁺ y (Aᵀ y when there is no pseudo-inverse), clamped to the pixel range."""
    return (op.pinv(y) if op.has_pinv else op.adjoint(y)).clamp(-1, 1)


def start_index(schedule: Schedule, start_timestep: int | None) -> int:
    """The sampling index to start from: the top (pure noise), or the last level at or below
    ``start_timestep`` (an original timestep of the model)."""
    if start_timestep is None:
        return len(schedule) - 1
    below = [i for i, t in enumerate(schedule.timesteps) if int(t) <= start_timestep]
    if not below:
        raise ValueError(f"no sampling step at or below start_timestep={start_timestep}")
    return below[-1]


def guided_sample(
    model: nn.Module,
    op: LinearOperator,
    y: Tensor,
    shape: Sequence[int],
    cfg: ADIRConfig,
    *,
    schedule: Schedule | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """DDPM ancestral sampling with the ADIR step as the per-step callback.

    ``schedule`` is the sampling chain (default: the config's respaced schedule). With
    ``cfg.start_timestep`` the chain starts at that level from ``√ᾱ A⁺y + √(1-ᾱ) z``; with
    ``cfg.guidance.final == "discrepancy"`` the output is projected to the noise level.
    """
    schedule = schedule if schedule is not None else sampling_schedule(cfg)
    eps_model = None
    if cfg.guidance.eps_source == "reevaluate":
        eps_model = eps_at_index(model, schedule, variance=cfg.variance)
    callback = adir_callback(op, y, cfg.guidance, noise_sigma=cfg.noise_sigma, eps_model=eps_model)
    device = next(model.parameters()).device
    start = start_index(schedule, cfg.start_timestep)
    x = per_sample_noise(shape, generator, device)
    if cfg.start_timestep is not None:
        abar = float(schedule.alphas_cumprod[start])
        x = abar**0.5 * naive_baseline(op, y).to(x) + (1 - abar) ** 0.5 * x
    out = sample_ddpm(
        model,
        x,
        schedule,
        variance=cfg.variance,
        clip_x0=cfg.clip_x0,
        start_index=start,
        generator=generator,
        callback=callback,
        progress=progress,
    )
    if cfg.guidance.final == "discrepancy":
        out = discrepancy_projection(op, out.clamp(-1, 1), y, cfg.noise_sigma)
    return out


def retrieve_rows(
    index: RetrievalIndex,
    embedder: Embedder,
    op: LinearOperator,
    y: Tensor,
    k: int,
    *,
    method: str = "kdtree",
    exclude_rows: Sequence[int] = (),
) -> list[int]:
    """Rows of the K corpus images nearest to the degraded image (embedded at full size, A⁺ y)."""
    if embedder.name != index.embedder:
        raise ValueError(
            f"the index was built with embedder {index.embedder!r}, not {embedder.name!r}; "
            "rebuild it or pass the same --clip folder"
        )
    query = embedder(naive_baseline(op, y)).float().cpu().numpy()
    return [int(i) for i in index.search(query, k, method=method, exclude=exclude_rows)[0]]


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
    """Paths of the K corpus images nearest to the degraded image (see :func:`retrieve_rows`)."""
    rows = retrieve_rows(
        index, embedder, op, y, k, method=method, exclude_rows=sorted(index.excluded(exclude))
    )
    return [index.paths[i] for i in rows]


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
