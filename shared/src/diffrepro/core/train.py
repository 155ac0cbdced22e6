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
the oldest of this run beyond ``keep_checkpoints`` are deleted (only steps before the one just
written, so ``latest`` always names a complete folder). ``resume=False`` never deletes anything:
it refuses an ``out_dir`` that already holds checkpoints (:func:`check_run_dir`, which commands
call before they write anything). TensorBoard logs go to ``out_dir/tb``; when stderr is not a
terminal a one-line progress report (step, loss, elapsed, ETA) is printed every
``DIFFREPRO_PROGRESS_SECONDS`` (default 30) seconds instead of the progress bar.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors import safe_open
from torch import nn
from tqdm import tqdm

from diffrepro.core.checkpoints import (
    atomic_write,
    load_checkpoint,
    load_state_dict,
    save_checkpoint,
    torch_load_weights_only,
)
from diffrepro.core.config import check_ranges, config_from_saved
from diffrepro.core.data import save_grid
from diffrepro.core.nn.ema import EMA
from diffrepro.core.progress import ProgressLines, on_terminal

LossFn = Callable[[nn.Module, Any], torch.Tensor]
SampleFn = Callable[[nn.Module], torch.Tensor]


LR_DECAYS = ("constant", "cosine")


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
    lr_decay: str = "constant"
    channels_last: bool = False
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
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 1, got {value!r}")
        check_ranges(
            self,
            positive=("lr", "grad_clip"),
            nonnegative=("weight_decay", "warmup_steps", "image_every", "seed"),
            fraction=("ema_decay",),
        )
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(
                f"TrainConfig.lr_decay must be one of {LR_DECAYS}, got {self.lr_decay!r}"
            )
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas}")


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
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` for ``config.steps`` optimizer steps (continuing from the last checkpoint
    in ``out_dir`` when ``resume``). ``params`` defaults to every parameter that requires grad."""
    out_dir = Path(out_dir)
    check_run_dir(out_dir, resume)
    created_group = init_distributed()
    rank, world = _rank_world()
    device = torch.device(device) if device is not None else _default_device()
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
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
    bar = tqdm(total=config.steps, initial=step, disable=rank != 0 or not on_terminal(), desc=desc)
    report = ProgressLines(desc, config.steps, step) if rank == 0 and bar.disable else None
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
            if report is not None:
                report.update(step, f"loss {loss:.4f}")
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
        if config.channels_last:
            model.to(memory_format=torch.contiguous_format)
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
        batch = _to_device(batch_at(index), device, config.channels_last)
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
        group["lr"] = learning_rate(config, step)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / config.grad_accum, grad_norm


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup_steps``, then constant or a cosine decay to 0 at ``steps``."""
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.lr_decay == "cosine":
        warm *= 0.5 * (1 + math.cos(math.pi * step / config.steps))
    return config.lr * warm


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
    meta = {
        "train": dataclasses.asdict(config),
        "model": _as_dict(model_config),
        "model_class": _class_name(model_config),
        "step": step,
    }
    try:
        save_checkpoint(tmp / "model.safetensors", model, meta)
        if ema is not None:
            save_checkpoint(tmp / "ema.safetensors", ema.state_dict(), meta)
        state = {"optimizer": optimizer.state_dict(), "step": step, "losses": list(losses or [])}
        torch.save(state, tmp / "train_state.pt")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write(root / "latest", lambda p: p.write_text(final.name))
    older = [
        p for p in sorted(root.glob("step_*")) if _step_of(p) is not None and _step_of(p) < step
    ]
    for old in older[: max(len(older) - (config.keep_checkpoints - 1), 0)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def check_run_dir(out_dir: str | os.PathLike, resume: bool) -> None:
    """Check ``out_dir`` before anything is written into it.

    A fresh run (``resume=False``) is refused in a folder that already holds checkpoints:
    nothing of an earlier run is ever deleted or mixed with the new one. A resumed run needs a
    readable latest checkpoint (its pointer, weights headers and training state)."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return
    if not resume:
        if any(root.glob("step_*")) or (root / "latest").exists():
            raise ValueError(
                f"--out {out_dir} already holds the checkpoints of an earlier run; --no-resume "
                "starts a fresh run and never deletes them: choose a new --out (or remove it)"
            )
        return
    folder = latest_checkpoint(out_dir)
    if folder is None:
        return
    for weights in ("model.safetensors", "ema.safetensors"):
        if (folder / weights).is_file():
            _check_header(folder / weights)
    _read_train_state(folder / "train_state.pt")


def _check_header(path: Path) -> None:
    """A readable safetensors header (cheap: the tensors are not read)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.metadata()
    except Exception as err:  # SafetensorError, OSError, ... for a damaged file
        raise ValueError(
            f"cannot resume: {path} is not a readable safetensors file ({err})"
        ) from None


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The folder ``checkpoints/latest`` names, or None for a run without checkpoints."""
    pointer = Path(out_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the checkpoint pointer {pointer}: {err}") from None
    if not re.fullmatch(r"step_\d{7}", name):
        raise ValueError(f"{pointer} should name a step_<7 digits> folder, but holds {name[:40]!r}")
    folder = pointer.parent / name
    missing = [f for f in ("model.safetensors", "train_state.pt") if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{pointer} names {folder}, which is not a complete checkpoint "
            f"(missing {', '.join(missing)})"
        )
    return folder


def model_config_from_checkpoint(cls: type, meta: dict[str, Any], path: str | os.PathLike) -> Any:
    """The model config (``cls``) of a training checkpoint's metadata, with clear errors for
    a checkpoint without one and for another paper's checkpoint."""
    if not isinstance(meta.get("model"), dict):
        raise ValueError(f"{path} carries no {cls.__name__}: it was not written by this command")
    saved_class = meta.get("model_class")
    return config_from_saved(
        cls,
        meta["model"],
        str(path),
        saved_class=saved_class if isinstance(saved_class, str) else None,
    )


def _step_of(folder: Path) -> int | None:
    match = re.fullmatch(r"step_(\d+)", folder.name)
    return int(match.group(1)) if match else None


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
        ema_weights = load_checkpoint(ema_path)[0]
        try:
            ema.load_state_dict(ema_weights)
        except (KeyError, RuntimeError) as err:
            raise ValueError(f"cannot resume: {ema_path} does not fit the model ({err})") from None
    state = _read_train_state(folder / "train_state.pt")
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"optimizer state in {folder} does not fit the parameters being trained: {err}"
        ) from None
    return int(state["step"]), [float(v) for v in state.get("losses", [])]


def _read_train_state(path: Path) -> dict[str, Any]:
    """``train_state.pt`` (weights-only unpickling); a clear error for a corrupt or foreign one."""
    state = torch_load_weights_only(path, "a training state (cannot resume)")
    ok = isinstance(state, dict) and isinstance(state.get("optimizer"), dict)
    ok = ok and isinstance(state.get("step"), int) and isinstance(state.get("losses", []), list)
    if not ok:
        raise ValueError(
            f"cannot resume: {path} is not a training state written by diffrepro "
            "(expected optimizer, step and losses)"
        )
    return state


def _class_name(config: Any) -> str | None:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return f"{type(config).__module__}.{type(config).__qualname__}"
    return None


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


def _to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor of ``batch`` to ``device`` (4-D float tensors to channels-last when
    asked: the model's convolutions then run in that faster layout on CPU)."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device, channels_last) for v in batch)
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
