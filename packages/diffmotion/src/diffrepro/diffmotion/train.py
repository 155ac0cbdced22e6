"""Training: teacher-forced clips, previous-pose data dropout, Adam, a checkpoint with the
config and the normalisation statistics.

A small loop of its own rather than ``diffrepro.core.train``: each batch is a set of whole clips
whose condition rows are rebuilt with fresh data dropout, and the official recipe (Adam, constant
learning rate, no clipping, no EMA) needs none of the generic machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffrepro.core.checkpoints import load_checkpoint, load_state_dict, save_checkpoint
from diffrepro.core.config import config_from_dict, save_config

from .config import DiffMotionConfig
from .model import DiffMotion
from .poses import Standardizer
from .threads import single_threaded_on_cpu
from .windows import condition_windows, data_dropout

CHECKPOINT_NAME = "model.safetensors"


@dataclass(frozen=True)
class TrainResult:
    model: DiffMotion
    losses: list[float]
    checkpoint: Path | None


def fit_statistics(poses: np.ndarray, speech: np.ndarray) -> tuple[Standardizer, Standardizer]:
    """Per-dimension standardisers of poses and speech features (fitted on training data)."""
    return Standardizer.fit(poses), Standardizer.fit(speech)


def build_model(cfg: DiffMotionConfig, pose: Standardizer, speech: Standardizer) -> DiffMotion:
    """A fresh model carrying the normalisation statistics."""
    if cfg.model.pose_dim != 3 * len(cfg.joints):
        raise ValueError(f"pose_dim {cfg.model.pose_dim} does not match {len(cfg.joints)} joints")
    model = DiffMotion(cfg.model)
    model.set_statistics(
        (torch.as_tensor(pose.mean), torch.as_tensor(pose.std)),
        (torch.as_tensor(speech.mean), torch.as_tensor(speech.std)),
    )
    return model


def train(
    cfg: DiffMotionConfig,
    poses: np.ndarray,
    speech: np.ndarray,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    out_dir: Path | None = None,
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train on clips ``poses (N, clip, D)`` / ``speech (N, clip, A)`` (raw, unstandardised);
    single-threaded on CPU (see :mod:`.threads`)."""
    with single_threaded_on_cpu(device):
        return _train(cfg, poses, speech, seed, device, out_dir, progress, on_step)


def _train(cfg, poses, speech, seed, device, out_dir, progress, on_step) -> TrainResult:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    pose_stats, speech_stats = fit_statistics(poses, speech)
    model = build_model(cfg, pose_stats, speech_stats).to(device)
    m = cfg.model
    cond, target = condition_windows(
        torch.as_tensor(pose_stats.transform(poses), dtype=torch.float32),
        torch.as_tensor(speech_stats.transform(speech), dtype=torch.float32),
        m.seqlen,
        m.lookahead,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    writer = _writer(out_dir)
    losses = []
    steps = range(cfg.steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="train")
    model.train()
    for step in steps:
        batch = torch.randint(
            0, cond.shape[0], (min(cfg.batch_size, cond.shape[0]),), generator=generator
        )
        rows = data_dropout(cond[batch], m.pose_dim, m.seqlen, cfg.data_dropout, generator)
        loss = model.loss(rows.to(device), target[batch].to(device), generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
        if writer is not None and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            writer.add_scalar("train/loss", losses[-1], step)
    checkpoint = None
    if out_dir is not None:
        writer.close()
        checkpoint = save_model(model, cfg, Path(out_dir) / CHECKPOINT_NAME)
        save_config(cfg, Path(out_dir) / "config.json")
    model.eval()
    return TrainResult(model, losses, checkpoint)


def _writer(out_dir: Path | None):
    if out_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(Path(out_dir) / "tensorboard"))


def save_model(model: DiffMotion, cfg: DiffMotionConfig, path: Path) -> Path:
    """Weights + statistics as safetensors, the config as JSON metadata (atomic write)."""
    return save_checkpoint(path, model, cfg)


def load_model(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[DiffMotion, DiffMotionConfig]:
    """A model and its config from a checkpoint written by :func:`save_model`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path} (train one with `diffmotion train` or pass --checkpoint)"
        )
    state, raw = load_checkpoint(path)
    if not raw:
        raise ValueError(
            f"{path} carries no DiffMotion config (was it written by diffmotion train?)"
        )
    cfg = config_from_dict(DiffMotionConfig, raw)
    model = DiffMotion(cfg.model)
    load_state_dict(model, state, source=str(path))
    return model.to(device).eval(), cfg
