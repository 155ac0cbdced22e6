"""The shared training loop: AdamW, EMA, gradient clipping and accumulation, atomic checkpoints
with exact resume, TensorBoard, a progress bar, and DDP under torchrun.

A paper package calls one function::

    result = train(model, loss_fn, data, TrainConfig(steps=..., batch_size=...), out_dir,
                   model_config=cfg, sample_fn=..., resume=True)

- ``loss_fn(model, batch) -> Tensor`` returns a scalar loss. ``model`` may be the DDP wrapper:
  call it, and use :func:`unwrap` to reach attributes.
- ``data`` is a map-style ``Dataset`` (shuffled per epoch with a seeded permutation, items
  collated with ``default_collate``) or a function ``batch_at(index) -> batch`` giving the batch
  of global micro-batch ``index``.

Exact resume. Nothing random depends on how long the process has lived: micro-batch ``m`` (the
``m``-th batch of the whole run, counted over steps, accumulation and DDP ranks as
``m = (step · grad_accum + j) · world_size + rank``) reads data at a fixed position of the seeded
stream, and torch/numpy/random are re-seeded from ``(seed, m)`` before it is drawn and the loss is
computed. The RNG state is therefore a function of the position and needs no saving, and a run
killed and resumed from its last checkpoint ends with bit-identical weights, EMA and optimizer.
It also makes 2-process DDP compute the same steps as one process with ``grad_accum=2``.

Checkpoints go to ``out_dir/checkpoints/step_<7 digits>/`` (``model.safetensors`` and
``ema.safetensors`` with the configs as JSON metadata, ``train_state.pt`` with optimizer state and
step), written to a temporary folder and renamed, then ``checkpoints/latest`` names the newest;
the oldest beyond ``keep_checkpoints`` are deleted. TensorBoard logs go to ``out_dir/tb``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from diffrepro.core.checkpoints import (
    atomic_write,
    load_checkpoint,
    load_state_dict,
    save_checkpoint,
)
from diffrepro.core.data import save_grid
from diffrepro.core.nn.ema import EMA

LossFn = Callable[[nn.Module, Any], torch.Tensor]
SampleFn = Callable[[nn.Module], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """``batch_size`` is per process and per micro-batch; the effective batch is
    ``batch_size · grad_accum · world_size``. ``grad_clip=None`` and ``ema_decay=None`` turn
    those off; ``image_every=0`` never calls ``sample_fn``."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    grad_accum: int = 1
    ema_decay: float | None = 0.9999
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    image_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "grad_accum",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}"
                )


@dataclasses.dataclass
class TrainResult:
    step: int
    losses: list[float]  # mean loss of every step so far (restored on resume; rank 0's)
    ema: EMA | None
    checkpoint: Path | None


def train(
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.utils.data.Dataset | Callable[[int], Any],
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    model_config: Any = None,
    sample_fn: SampleFn | None = None,
    params: list[nn.Parameter] | None = None,
    resume: bool = True,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train ``model`` for ``config.steps`` optimizer steps (continuing from the last checkpoint
    in ``out_dir`` when ``resume``). ``params`` defaults to every parameter that requires grad."""
    out_dir = Path(out_dir)
    created_group = init_distributed()
    rank, world = _rank_world()
    device = torch.device(device) if device is not None else _default_device()
    model.to(device)
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires grad")
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )
    ema = EMA(model, config.ema_decay) if config.ema_decay is not None else None
    step, losses = 0, []
    if resume and (latest := latest_checkpoint(out_dir)) is not None:
        step, losses = _restore(latest, model, ema, optimizer)
    wrapped = _wrap_ddp(model, device) if world > 1 else model
    batch_at: Callable[[int], Any]
    if isinstance(data, torch.utils.data.Dataset) or not callable(data):
        batch_at = ShuffledBatches(data, config.batch_size, config.seed)
    else:
        batch_at = data
    logger = _Logger(out_dir / "tb") if rank == 0 else None
    saved = None
    model.train()
    bar = tqdm(
        total=config.steps, initial=step, disable=rank != 0 or not sys.stderr.isatty(), desc="train"
    )
    try:
        while step < config.steps:
            loss, grad_norm = _step(
                wrapped, loss_fn, batch_at, optimizer, params, config, step, rank, world, device
            )
            if ema is not None:
                ema.update(model)
            step += 1
            losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if step % config.log_every == 0 or step == config.steps:
                mean_loss = _mean_over_ranks(loss, device, world)
                if logger:
                    logger.scalars(
                        step,
                        loss=mean_loss,
                        lr=optimizer.param_groups[0]["lr"],
                        grad_norm=grad_norm,
                    )
            if (
                sample_fn is not None
                and config.image_every
                and step % config.image_every == 0
                and rank == 0
            ):
                _log_samples(model, ema, sample_fn, logger, out_dir, step)
            if step % config.checkpoint_every == 0 or step == config.steps:
                if rank == 0:
                    saved = save_training_checkpoint(
                        out_dir, step, model, ema, optimizer, config, model_config, losses
                    )
                if world > 1:
                    dist.barrier()
    finally:
        bar.close()
        if logger:
            logger.close()
        if created_group:
            dist.destroy_process_group()
    return TrainResult(step, losses, ema, saved or latest_checkpoint(out_dir))


def _step(
    wrapped, loss_fn, batch_at, optimizer, params, config, step, rank, world, device
) -> tuple[float, float]:
    """One optimizer step over ``grad_accum`` micro-batches; returns (mean loss, grad norm)."""
    total = 0.0
    for j in range(config.grad_accum):
        index = (step * config.grad_accum + j) * world + rank
        seed_for_micro_batch(config.seed, index)
        batch = _to_device(batch_at(index), device)
        last = j == config.grad_accum - 1
        sync = contextlib.nullcontext() if last or world == 1 else wrapped.no_sync()
        with sync:
            loss = loss_fn(wrapped, batch)
            if loss.ndim != 0:
                raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step + 1}")
            (loss / config.grad_accum).backward()
        total += loss.item()
    grad_norm = _clip(params, config.grad_clip)
    for group in optimizer.param_groups:
        group["lr"] = (
            config.lr * min(1.0, (step + 1) / config.warmup_steps)
            if config.warmup_steps
            else config.lr
        )
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / config.grad_accum, grad_norm


def _clip(params: list[nn.Parameter], max_norm: float | None) -> float:
    if max_norm is None:
        norms = [p.grad.norm() for p in params if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))


class ShuffledBatches:
    """Batch ``m`` of an endless stream of seeded per-epoch permutations of ``dataset``."""

    def __init__(self, dataset: torch.utils.data.Dataset, batch_size: int, seed: int) -> None:
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ValueError("the training dataset is empty")
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __call__(self, index: int) -> Any:
        n = len(self.dataset)  # type: ignore[arg-type]
        positions = range(index * self.batch_size, (index + 1) * self.batch_size)
        return torch.utils.data.default_collate([self.dataset[self._item(q, n)] for q in positions])

    def _item(self, position: int, n: int) -> int:
        epoch = position // n
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(n, generator=gen)
        return int(self._perm[position % n])


def seed_for_micro_batch(seed: int, index: int) -> None:
    """Seed torch (all devices), numpy and random from (seed, micro-batch index)."""
    state = np.random.SeedSequence([seed, index]).generate_state(2)
    torch.manual_seed(int(state[0]) << 32 | int(state[1]))
    np.random.seed(int(state[0]))
    random.seed(int(state[1]))


# -- checkpoints ---------------------------------------------------------------------------------
def save_training_checkpoint(
    out_dir: Path,
    step: int,
    model: nn.Module,
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    model_config: Any = None,
    losses: list[float] | None = None,
) -> Path:
    """Write ``checkpoints/step_<7 digits>/`` atomically, point ``latest`` at it, prune old ones.

    ``train_state.pt`` holds the optimizer state, the step and the loss history so far."""
    root = out_dir / "checkpoints"
    final = root / f"step_{step:07d}"
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    meta = {"train": dataclasses.asdict(config), "model": _as_dict(model_config), "step": step}
    save_checkpoint(tmp / "model.safetensors", model, meta)
    if ema is not None:
        save_checkpoint(tmp / "ema.safetensors", ema.state_dict(), meta)
    state = {"optimizer": optimizer.state_dict(), "step": step, "losses": list(losses or [])}
    torch.save(state, tmp / "train_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write(root / "latest", lambda p: p.write_text(final.name))
    for old in sorted(root.glob("step_*"))[: -config.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    pointer = Path(out_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    if not (folder / "train_state.pt").is_file():
        raise FileNotFoundError(f"{pointer} names {folder}, which is not a complete checkpoint")
    return folder


def _restore(
    folder: Path, model: nn.Module, ema: EMA | None, optimizer: torch.optim.Optimizer
) -> tuple[int, list[float]]:
    """Load a training checkpoint; return its step and loss history."""
    weights, _ = load_checkpoint(folder / "model.safetensors")
    load_state_dict(model, weights, source=str(folder / "model.safetensors"))
    if ema is not None:
        ema_path = folder / "ema.safetensors"
        if not ema_path.is_file():
            raise FileNotFoundError(f"cannot resume with EMA: {ema_path} is missing")
        ema.load_state_dict(load_checkpoint(ema_path)[0])
    state = torch.load(folder / "train_state.pt", map_location="cpu", weights_only=True)
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as err:
        raise ValueError(
            f"optimizer state in {folder} does not fit the parameters being trained: {err}"
        ) from None
    return int(state["step"]), [float(v) for v in state.get("losses", [])]


def _as_dict(config: Any) -> Any:
    if config is None or isinstance(config, dict):
        return config
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    raise ValueError(
        f"model_config must be a dataclass instance, a dict or None, not {type(config).__name__}"
    )


# -- distributed ---------------------------------------------------------------------------------
def init_distributed() -> bool:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); True if we created it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return True


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _mean_over_ranks(value: float, device: torch.device, world: int) -> float:
    if world == 1:
        return value
    t = torch.tensor([value], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / world


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


# -- logging -------------------------------------------------------------------------------------
class _Logger:
    """TensorBoard scalars under ``train/`` and image grids under ``samples``."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalars(self, step: int, **values: float) -> None:
        for name, value in values.items():
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(f"train/{name}", value, global_step=step)

    def images(self, step: int, images: torch.Tensor) -> None:
        self.writer.add_images(
            "samples", ((images.float().cpu() + 1) / 2).clamp(0, 1), global_step=step
        )

    def close(self) -> None:
        self.writer.close()


@torch.no_grad()
def _log_samples(
    model: nn.Module, ema: EMA | None, sample_fn: SampleFn, logger, out_dir: Path, step: int
) -> None:
    was_training = model.training
    net = model
    if ema is not None:
        net = copy.deepcopy(model)
        ema.copy_to(net)
    net.eval()
    images = sample_fn(net)
    model.train(was_training)
    if logger:
        logger.images(step, images)
    save_grid(images, out_dir / "samples" / f"step_{step:07d}.png")
