"""Textual Inversion training: optimise only the placeholder's rows with the LDM loss (spec §3.1).

The trainable tensor is a separate parameter holding just the placeholder's ``n`` rows
(:class:`LearnedRows`); a forward hook on the text encoder's token embedding splices it in at the
placeholder ids. The token table itself is never handed to the optimiser, so every other row is
bit-identical after training whatever AdamW's weight decay or moments do (the diffusers example
instead restores the other rows after each step, spec §9.1). As in diffusers, weight decay does
apply to the placeholder rows. The loop is core :func:`diffrepro.core.train.train` (progress,
TensorBoard, atomic checkpoints of the rows alone, exact resume).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from diffrepro.core.finetune import ImageLatents, denoising_loss
from diffrepro.core.models.clip import CLIPTextModel
from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.train import TrainConfig, train

from .config import TIConfig
from .embeds import save_placeholder
from .formats import DEFAULT_NAMES
from .placeholders import Placeholder, check_fits, get_rows, set_rows
from .templates import templates_for


def scaled_lr(
    base_lr: float, batch_size: int, grad_accum: int, n_procs: int, enabled: bool
) -> float:
    """``base_lr x batch x grad_accum x processes`` when ``enabled`` (official ``--scale_lr``,
    on by default there; diffusers' ``--scale_lr``, off by default), else ``base_lr``."""
    return base_lr * batch_size * grad_accum * n_procs if enabled else base_lr


class LearnedRows(nn.Module):
    """The trainable rows (n, d), kept in float32; ``forward()`` returns them."""

    def __init__(self, rows: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(rows.detach().float().clone())

    def forward(self) -> torch.Tensor:
        return self.weight


class Splice:
    """Holds the rows the token-embedding hook writes at ids ``first .. first + n - 1``."""

    def __init__(self, placeholder: Placeholder, rows: torch.Tensor) -> None:
        self.first, self.n, self.rows = placeholder.ids[0], placeholder.num_vectors, rows

    def hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        offset = inputs[0] - self.first
        inside = (offset >= 0) & (offset < self.n)
        rows = self.rows.to(output.dtype)[offset.clamp(0, self.n - 1)]
        return torch.where(inside[..., None], rows, output)


@contextlib.contextmanager
def spliced(text_encoder: CLIPTextModel, splice: Splice) -> Iterator[Splice]:
    handle = text_encoder.embeddings.token_embedding.register_forward_hook(splice.hook)
    try:
        yield splice
    finally:
        handle.remove()


@contextlib.contextmanager
def frozen(sd: StableDiffusion) -> Iterator[None]:
    """Every weight of the bundle with ``requires_grad=False`` (restored afterwards)."""
    params = [p for m in (sd.unet, sd.vae, sd.text_encoder) for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


class ImageIndices(torch.utils.data.Dataset):
    """Items are the image indices 0..n-1 (core train shuffles them per epoch)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(i)


def make_loss_fn(
    sd: StableDiffusion,
    latents: ImageLatents,
    placeholder: Placeholder,
    splice: Splice,
    cfg: TIConfig,
    init_rows: torch.Tensor,
):
    """``loss_fn(model, image_indices)``: random flips, templates, noise and t per sample."""
    templates = templates_for(cfg.learnable_property, cfg.object_templates)

    def loss_fn(model: nn.Module, index: torch.Tensor) -> torch.Tensor:
        rows = model()
        splice.rows = rows
        b = index.shape[0]
        flipped = torch.rand(b) < cfg.flip_p
        z = latents.sample(index, flipped, sample=cfg.latent_sample)
        pick = torch.randint(len(templates), (b,))
        prompts = [templates[int(j)].format(placeholder.text) for j in pick]
        context = sd.text_encoder(sd.tokenizer(prompts).to(sd.device)).to(sd.dtype)
        loss = denoising_loss(sd, z, context)
        if cfg.embedding_reg_weight:
            drift = rows - init_rows.to(rows.device)
            loss = loss + cfg.embedding_reg_weight * (drift**2).sum()
        return loss

    return loss_fn


@dataclass(frozen=True)
class TIResult:
    placeholder: Placeholder
    embeds: Path
    losses: list[float]
    lr: float


def train_embedding(
    sd: StableDiffusion,
    images: torch.Tensor,
    placeholder: Placeholder,
    cfg: TIConfig,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    resume: bool = True,
) -> TIResult:
    """Learn ``placeholder``'s rows from ``images`` (N, 3, H, W) in [-1, 1]; writes the rows back
    into ``sd``'s token table and ``out_dir/learned_embeds.<format>``."""
    out_dir = Path(out_dir)
    templates = templates_for(cfg.learnable_property, cfg.object_templates)
    check_fits(sd.tokenizer, [t.format(placeholder.text) for t in templates])
    latents = ImageLatents.encode(sd, images)
    learned = LearnedRows(get_rows(sd.text_encoder, placeholder))
    init_rows = learned.weight.detach().clone()
    n_procs = int(os.environ.get("WORLD_SIZE", "1"))
    lr = scaled_lr(cfg.base_lr, cfg.batch_size, cfg.grad_accum, n_procs, cfg.scale_lr)
    train_cfg = TrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=lr,
        weight_decay=cfg.weight_decay,
        grad_clip=None,
        grad_accum=cfg.grad_accum,
        ema_decay=None,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        seed=seed,
    )
    splice = Splice(placeholder, learned.weight)
    loss_fn = make_loss_fn(sd, latents, placeholder, splice, cfg, init_rows)
    with frozen(sd), spliced(sd.text_encoder, splice):
        result = train(
            learned,
            loss_fn,
            ImageIndices(len(latents)),
            train_cfg,
            out_dir,
            model_config=cfg,
            params=[learned.weight],
            resume=resume,
            device=sd.device,
        )
    set_rows(sd.text_encoder, placeholder.ids, learned.weight)
    path = save_placeholder(
        sd,
        placeholder,
        out_dir / DEFAULT_NAMES[cfg.save_format],
        format=cfg.save_format,
        step=result.step,
    )
    return TIResult(placeholder, path, result.losses, lr)
