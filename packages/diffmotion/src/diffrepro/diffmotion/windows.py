"""Conditioning windows and previous-pose data dropout.

Row ``j`` of a clip's condition holds poses ``j .. j+seqlen-1`` and speech frames
``j .. j+seqlen+lookahead``; its target is pose ``j+seqlen``. So pose ``t`` sees the poses
before it and speech ``t-seqlen .. t+lookahead`` (5 + 1 + 20 = 26 frames in the paper).
"""

from __future__ import annotations

import torch
from torch import Tensor


def condition_windows(
    poses: Tensor, speech: Tensor, seqlen: int, lookahead: int
) -> tuple[Tensor, Tensor]:
    """``poses (B, F, D)`` and ``speech (B, F, A)`` to ``(cond (B, T, seqlen*D + W*A), target
    (B, T, D))`` with ``T = F - seqlen - lookahead`` and ``W = seqlen + 1 + lookahead``."""
    if poses.shape[:2] != speech.shape[:2]:
        raise ValueError(
            f"poses {tuple(poses.shape)} and speech {tuple(speech.shape)} differ in length"
        )
    rows = poses.shape[1] - seqlen - lookahead
    if rows < 1:
        raise ValueError(
            f"clips of {poses.shape[1]} frames are shorter than {seqlen + lookahead + 1}"
        )
    width = seqlen + 1 + lookahead
    past = poses[:, : rows + seqlen - 1].unfold(1, seqlen, 1)  # (B, T, D, seqlen)
    audio = speech[:, : rows + width - 1].unfold(1, width, 1)  # (B, T, A, W)
    cond = torch.cat([past.transpose(2, 3).flatten(2), audio.transpose(2, 3).flatten(2)], dim=2)
    return cond, poses[:, seqlen : seqlen + rows]


def pose_window(previous: Tensor, speech: Tensor) -> Tensor:
    """A condition row ``(B, 1, C)`` from ``previous (B, seqlen, D)`` and ``speech (B, W, A)``."""
    return torch.cat([previous.flatten(1), speech.flatten(1)], dim=1)[:, None, :]


def data_dropout(
    cond: Tensor, pose_dim: int, seqlen: int, p: float, generator: torch.Generator | None = None
) -> Tensor:
    """Zero each previous-pose frame slot (all ``pose_dim`` values together) with probability
    ``p``, independently per clip, time step and slot; the speech part is never touched."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"data dropout must lie in [0, 1), got {p}")
    if p == 0.0:
        return cond
    batch, time = cond.shape[:2]
    keep = torch.rand(batch, time, seqlen, 1, generator=generator) >= p
    keep = keep.to(cond.device).expand(batch, time, seqlen, pose_dim).reshape(batch, time, -1)
    poses = cond[..., : seqlen * pose_dim] * keep
    return torch.cat([poses, cond[..., seqlen * pose_dim :]], dim=-1)
