"""Autoregressive generation of a whole clip, one pose at a time, carrying the LSTM state.

For every output frame ``t`` the condition row (the last ``seqlen`` generated poses and the
speech window) goes through one LSTM step; ``samples_per_frame`` reverse DDPM chains then run
from N(0, I) conditioned on the LSTM output, and the result (one sample, or the median / mean
over the samples, as the official code's median of 200) is fed back as the next previous pose.

The output has one pose per speech frame. Poses before the clip are the mean pose (zeros after
standardisation, the official seed) and the speech window is padded by repeating the edge
frames, so frame 0 is generated as well. ``alignment="training"`` (default) gives pose ``t``
speech ``t-seqlen .. t+lookahead``, the window it was trained with; the released sampler is one
frame late (speech ``t-seqlen+1 .. t+lookahead+1``, after a warm-up LSTM step whose output is
discarded); ``alignment="official"`` reproduces that for checkpoint-faithful runs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffrepro.core.progress import track
from diffrepro.core.repro import single_threaded_on_cpu
from diffrepro.core.samplers import sample_ddpm
from diffrepro.core.schedules import Schedule, space_timesteps

from .config import ALIGNMENTS, REDUCTIONS, SamplingConfig
from .model import DiffMotion
from .windows import pose_window

DEFAULT_SAMPLING = SamplingConfig()


def sampling_schedule(model: DiffMotion, steps: int | None) -> Schedule:
    """The model's schedule, respaced to ``steps`` evenly spaced steps when given."""
    full = model.schedule
    if steps is None or steps == len(full):
        return full
    if not 1 <= steps <= len(full):
        raise ValueError(f"sampling steps must lie in [1, {len(full)}], got {steps}")
    return full.respace(space_timesteps(len(full), str(steps)))


def reduce_samples(samples: Tensor, reduce: str) -> Tensor:
    """``(K, B, D)`` samples of one frame to ``(B, D)``."""
    if reduce == "median":
        return samples.quantile(0.5, dim=0)  # the per-dimension median, as torch.quantile(.., 0.5)
    if reduce == "mean":
        return samples.mean(0)
    return samples[0]


def _check(cfg: SamplingConfig) -> None:
    if cfg.reduce not in REDUCTIONS:
        raise ValueError(f"unknown reduce {cfg.reduce!r}; expected one of {REDUCTIONS}")
    if cfg.alignment not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {cfg.alignment!r}; expected one of {ALIGNMENTS}")
    if cfg.samples_per_frame < 1:
        raise ValueError(f"samples_per_frame must be >= 1, got {cfg.samples_per_frame}")
    if cfg.reduce == "none" and cfg.samples_per_frame != 1:
        raise ValueError("reduce='none' emits one sample per frame: set samples_per_frame=1")


def generate(
    model: DiffMotion,
    speech: Tensor,
    cfg: SamplingConfig = DEFAULT_SAMPLING,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """Standardised poses ``(B, F, D)`` for standardised speech features ``speech (B, F, A)``
    (single-threaded on CPU, see :func:`diffrepro.core.repro.single_threaded_on_cpu`)."""
    _check(cfg)
    with single_threaded_on_cpu(speech.device), torch.no_grad():
        return _generate(model, speech, cfg, generator, progress)


def _generate(
    model: DiffMotion,
    speech: Tensor,
    cfg: SamplingConfig,
    generator: torch.Generator | None,
    progress: bool,
) -> Tensor:
    was_training = model.training
    model.eval()
    m = model.cfg
    batch, frames, _ = speech.shape
    shift = 1 if cfg.alignment == "official" else 0
    padded = torch.cat(
        [speech[:, :1].expand(-1, m.seqlen, -1), speech,
         speech[:, -1:].expand(-1, m.lookahead + shift, -1)], dim=1,
    )  # fmt: skip
    schedule = sampling_schedule(model, cfg.steps)
    previous = torch.zeros(batch, m.seqlen, m.pose_dim, device=speech.device)
    state = None
    if shift:  # the released sampler's warm-up step on the unshifted first window
        _, state = model.encode(pose_window(previous, padded[:, : m.speech_window]))
    k = cfg.samples_per_frame
    poses = []
    for t in _frames(frames, progress):
        window = padded[:, t + shift : t + shift + m.speech_window]
        h, state = model.encode(pose_window(previous, window), state)
        h = h[:, 0].repeat(k, 1)  # (K * B, H), sample-major
        noise = torch.randn(k * batch, 1, m.pose_dim, generator=generator).to(speech.device)
        x = sample_ddpm(
            lambda x, s, h=h: model.denoise(x, s, h), noise, schedule, generator=generator
        )
        pose = reduce_samples(x.reshape(k, batch, m.pose_dim), cfg.reduce)
        poses.append(pose)
        previous = torch.cat([previous[:, 1:], pose[:, None]], dim=1)
    model.train(was_training)
    return torch.stack(poses, dim=1)


def _frames(frames: int, progress: bool):
    if not progress:
        return range(frames)
    return track(range(frames), desc="frames")
