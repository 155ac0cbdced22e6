"""Training on the shared loop (:func:`diffrepro.core.train.train`) with DiffMotion's recipe.

The data set holds every conditioning window of every clip (teacher forcing); the loss applies
fresh previous-pose data dropout to each batch. The official recipe is Adam at a constant
learning rate with no clipping and no EMA: the core's AdamW with ``weight_decay=0`` performs
exactly Adam's update. The normalisation statistics are buffers of the model, so every checkpoint
carries them, and the :class:`DiffMotionConfig` is the checkpoints' ``model`` metadata.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from diffrepro.core.checkpoints import load_checkpoint, load_state_dict
from diffrepro.core.config import save_config
from diffrepro.core.repro import seed_everything, single_threaded_on_cpu
from diffrepro.core.train import (
    TrainConfig,
    TrainResult,
    check_run_dir,
    latest_checkpoint,
    model_config_from_checkpoint,
    train,
)

from .config import DiffMotionConfig
from .model import DiffMotion
from .poses import Standardizer
from .windows import condition_windows, data_dropout

ADAM_BETAS = (0.9, 0.999)  # torch's Adam defaults, which the official code keeps


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


def train_config(cfg: DiffMotionConfig, seed: int = 0) -> TrainConfig:
    """The official recipe as a core :class:`TrainConfig`: Adam, constant LR, no clip, no EMA."""
    return TrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=0.0,
        betas=ADAM_BETAS,
        grad_clip=None,
        ema_decay=None,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        seed=seed,
    )


def window_dataset(
    cfg: DiffMotionConfig,
    poses: np.ndarray,
    speech: np.ndarray,
    pose_stats: Standardizer,
    speech_stats: Standardizer,
) -> TensorDataset:
    """Standardised clips as (condition rows ``(T, C)``, target poses ``(T, D)``) pairs."""
    cond, target = condition_windows(
        torch.as_tensor(pose_stats.transform(poses), dtype=torch.float32),
        torch.as_tensor(speech_stats.transform(speech), dtype=torch.float32),
        cfg.model.seqlen,
        cfg.model.lookahead,
    )
    return TensorDataset(cond, target)


def dropout_loss(cfg: DiffMotionConfig) -> Callable[[nn.Module, tuple[Tensor, Tensor]], Tensor]:
    """The loss of a batch after previous-pose data dropout (drawn from the seeded global RNG)."""
    m = cfg.model

    def loss_fn(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        cond, target = batch
        return model(data_dropout(cond, m.pose_dim, m.seqlen, cfg.data_dropout), target)

    return loss_fn


def train_model(
    cfg: DiffMotionConfig,
    poses: np.ndarray,
    speech: np.ndarray,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    resume: bool = True,
) -> tuple[DiffMotion, TrainResult]:
    """Train (or resume) on raw clips ``poses (N, clip, D)`` / ``speech (N, clip, A)``; checkpoints
    go to ``out_dir/checkpoints/``, each with the config as ``config.json`` beside it (and in
    ``out_dir``). Single-threaded on CPU (:func:`diffrepro.core.repro.single_threaded_on_cpu`)."""
    check_run_dir(out_dir, resume)  # a broken earlier run fails before anything is written
    save_config(cfg, Path(out_dir) / "config.json")
    seed_everything(seed)
    stats = fit_statistics(poses, speech)
    model = build_model(cfg, *stats)
    data = window_dataset(cfg, poses, speech, *stats)
    with single_threaded_on_cpu(device):
        result = train(
            model,
            dropout_loss(cfg),
            data,
            train_config(cfg, seed),
            out_dir,
            model_config=cfg,
            resume=resume,
            device=device,
        )
    for folder in sorted((Path(out_dir) / "checkpoints").glob("step_*")):
        save_config(cfg, folder / "config.json")
    return model.eval(), result


def load_model(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[DiffMotion, DiffMotionConfig]:
    """A model and its config from a training run folder (its latest checkpoint) or from one of
    its ``model.safetensors`` files."""
    path = Path(path)
    if path.is_dir():
        folder = latest_checkpoint(path)
        if folder is None:
            raise FileNotFoundError(
                f"no training checkpoint in {path} (train one with `diffmotion train`)"
            )
        path = folder / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path} (train one with `diffmotion train` or pass --checkpoint)"
        )
    state, meta = load_checkpoint(path)
    cfg = model_config_from_checkpoint(DiffMotionConfig, meta, path)
    model = DiffMotion(cfg.model)
    load_state_dict(model, state, source=str(path))
    return model.to(device).eval(), cfg
