"""Fine-tuning with the plain ε-prediction loss (spec §3.3) through core ``train``.

    L = E_{x0 ~ D_tgt, t ~ U{0..T-1}, ε} || ε − ε_θ(√ᾱ_t x0 + √(1−ᾱ_t) ε, t) ||²

with the pretrained schedule unchanged, random horizontal flips (``flip_p``) as the only
augmentation. The core loop trains a :class:`TrainableView`, a module whose parameters *are*
the trainable tensors of the :class:`~diffrepro.limited_data_ft.model.FineTuneModel` (shared,
not copied): its checkpoints, EMA and optimizer state hold only those tensors, never the frozen
base. Training runs in segments (``eval_every``) so the curves over training time can be
measured; core train's exact resume makes a segmented run bit-identical to one long run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from diffrepro.core.losses import diffusion_loss
from diffrepro.core.schedules import Schedule
from diffrepro.core.train import TrainConfig, train

from .config import FTConfig
from .model import FineTuneModel

Evaluate = Callable[[FineTuneModel, int], dict]


class TrainableView(nn.Module):
    """The trainable parameters of ``model`` (the same Parameter objects) under flat names."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        if not self.names:
            raise ValueError("nothing to train: no parameter requires grad")
        params = dict(model.named_parameters())
        self.params = nn.ParameterDict({_flat(n): params[n] for n in self.names})


def _flat(name: str) -> str:
    return name.replace(".", "__")


def denoiser(model: nn.Module, labels: torch.Tensor | None) -> Callable:
    """``(x_t, t) -> ε̂``: the prediction half of the output (drops learned-variance channels)."""

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(x, t) if labels is None else model(x, t, labels)
        return out[:, : x.shape[1]]

    return eps


def ddpm_loss(
    model: nn.Module,
    x0: torch.Tensor,
    schedule: Schedule,
    *,
    t: torch.Tensor,
    noise: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the batch of the per-sample mean squared ε error."""
    terms = diffusion_loss(denoiser(model, labels), x0, t, schedule, noise=noise, prediction="eps")
    return terms["mse"].mean()


def make_loss_fn(model: FineTuneModel, schedule: Schedule, cfg: FTConfig, conditional: bool):
    """``loss_fn(view, (images, labels))`` with flips, t and ε drawn per micro-batch (seeded by
    core train from the micro-batch position)."""

    def loss_fn(view: nn.Module, batch) -> torch.Tensor:
        x0, labels = batch
        flip = torch.rand(x0.shape[0], device=x0.device) < cfg.flip_p
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(0, len(schedule), (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        return ddpm_loss(
            model, x0, schedule, t=t, noise=noise, labels=labels if conditional else None
        )

    return loss_fn


@dataclass
class FinetuneResult:
    steps: int
    losses: list[float]
    curve: list[dict] = field(default_factory=list)


def finetune(
    model: FineTuneModel,
    images: torch.Tensor,
    schedule: Schedule,
    cfg: FTConfig,
    out_dir: str | os.PathLike,
    *,
    labels: torch.Tensor | None = None,
    seed: int = 0,
    eval_every: int | None = None,
    evaluate: Evaluate | None = None,
    evaluate_start: bool = True,
    device: str | torch.device = "cpu",
) -> FinetuneResult:
    """Fine-tune ``model`` on ``images`` (N, C, H, W) in [-1, 1]; ``evaluate(model, step)`` runs
    at step 0 (unless ``evaluate_start`` is false) and every ``eval_every`` steps (with the EMA
    weights when EMA is on). At the end
    the model holds the EMA weights (or the last ones without EMA)."""
    conditional = getattr(model.config, "num_classes", None) is not None
    if conditional and labels is None:
        raise ValueError("the base model is class-conditional: give class labels")
    if images.ndim != 4 or images.shape[0] < 1:
        raise ValueError(f"images must be (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    y = labels if labels is not None else torch.zeros(len(images), dtype=torch.long)
    data = torch.utils.data.TensorDataset(images.float(), y.long())
    model.to(device)
    view = TrainableView(model)
    loss_fn = make_loss_fn(model, schedule, cfg, conditional)
    ends = _segment_ends(cfg.steps, eval_every)
    result = FinetuneResult(0, [])
    if evaluate is not None and evaluate_start:
        result.curve.append({"step": 0, **_evaluated(model, evaluate, 0)})
    ema = None
    for end in ends:
        train_cfg = _train_config(cfg, end, seed)
        model.train()
        out = train(view, loss_fn, data, train_cfg, out_dir, model_config=cfg, device=device,
                    desc=f"finetune {cfg.variant}")  # fmt: skip
        result.steps, result.losses, ema = out.step, out.losses, out.ema
        if evaluate is not None and end in _eval_steps(cfg.steps, eval_every):
            with _ema_weights(view, ema):
                result.curve.append({"step": end, **_evaluated(model, evaluate, end)})
    if ema is not None:
        ema.copy_to(view)
    model.eval()
    return result


def _train_config(cfg: FTConfig, steps: int, seed: int) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        grad_clip=cfg.grad_clip,
        ema_decay=cfg.ema_decay,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        seed=seed,
    )


def _segment_ends(steps: int, eval_every: int | None) -> list[int]:
    if eval_every is None:
        return [steps]
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    return sorted({*range(eval_every, steps, eval_every), steps})


def _eval_steps(steps: int, eval_every: int | None) -> set[int]:
    return set(_segment_ends(steps, eval_every))


def _evaluated(model: FineTuneModel, evaluate: Evaluate, step: int) -> dict:
    model.eval()
    with torch.no_grad():
        return evaluate(model, step)


class _ema_weights:
    """Swap the EMA averages into ``view`` for the block (no-op without EMA)."""

    def __init__(self, view: TrainableView, ema) -> None:
        self.view, self.ema, self.saved = view, ema, None

    def __enter__(self) -> None:
        if self.ema is not None:
            self.saved = {k: v.detach().clone() for k, v in self.view.state_dict().items()}
            self.ema.copy_to(self.view)

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            self.view.load_state_dict(self.saved)


def fixed_grid_loss(
    model: nn.Module,
    x0: torch.Tensor,
    schedule: Schedule,
    *,
    t_grid: list[int],
    seed: int = 0,
    labels: torch.Tensor | None = None,
) -> float:
    """The loss averaged over a fixed t grid with fixed noise (a low-variance progress probe)."""
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for t in t_grid:
            noise = torch.randn(x0.shape, generator=gen).to(x0)
            ts = torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device)
            total += float(ddpm_loss(model, x0, schedule, t=ts, noise=noise, labels=labels))
    return total / len(t_grid)
