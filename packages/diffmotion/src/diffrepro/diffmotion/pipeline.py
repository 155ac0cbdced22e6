"""From raw speech to raw poses and BVH files, with the model's normalisation statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .audio import MelConfig, read_wav, speech_features
from .bvh import Skeleton, write_bvh
from .config import DiffMotionConfig, SamplingConfig
from .generate import generate
from .model import DiffMotion
from .poses import poses_to_motion


def poses_for_speech(
    model: DiffMotion,
    speech: np.ndarray,
    sampling: SamplingConfig,
    *,
    seed: int = 0,
    copies: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """Raw exponential-map poses ``(copies, frames, D)`` for raw log-mel features ``(frames, A)``;
    the copies share the speech and differ in noise (for diversity)."""
    if np.ndim(speech) != 2:
        raise ValueError(f"speech features must be (frames, bands), got shape {np.shape(speech)}")
    return poses_for_speeches(
        model, np.asarray(speech)[None], sampling, seed=seed, copies=copies, progress=progress
    )[0]


def poses_for_speeches(
    model: DiffMotion,
    speech: np.ndarray,
    sampling: SamplingConfig,
    *,
    seed: int = 0,
    copies: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """Raw poses ``(utterances, copies, frames, D)`` for equally long raw log-mel features
    ``(utterances, frames, A)``, generated in one batch (much faster than one by one)."""
    device = model.pose_mean.device
    features = torch.as_tensor(speech, dtype=torch.float32, device=device)
    if features.ndim != 3 or features.shape[2] != model.cfg.audio_dim:
        raise ValueError(
            f"speech features must be (utterances, frames, {model.cfg.audio_dim}), "
            f"got {tuple(features.shape)}"
        )
    count, frames = features.shape[:2]
    standardised = ((features - model.speech_mean) / model.speech_std).repeat_interleave(copies, 0)
    generator = torch.Generator().manual_seed(seed)
    poses = generate(model, standardised, sampling, generator=generator, progress=progress)
    poses = poses * model.pose_std + model.pose_mean
    return poses.reshape(count, copies, frames, -1).cpu().numpy()


def gestures_for_audio(
    model: DiffMotion,
    cfg: DiffMotionConfig,
    audio_path: str | Path,
    out_path: str | Path,
    skeleton: Skeleton,
    sampling: SamplingConfig,
    *,
    seed: int = 0,
) -> Path:
    """Read a WAV, generate one gesture clip at ``cfg.fps`` and write it as BVH on ``skeleton``."""
    for name in cfg.joints:
        skeleton.index(name)  # a clear error when the skeleton lacks a trained joint
    audio, rate = read_wav(audio_path)
    speech = speech_features(audio, rate, MelConfig(fps=cfg.fps))
    poses = poses_for_speech(model, speech, sampling, seed=seed, progress=True)[0]
    return write_bvh(poses_to_motion(poses, skeleton, cfg.joints, cfg.fps), out_path)
