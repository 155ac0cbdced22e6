"""Paired speech + motion data: the embedded synthetic set and folders of BVH + WAV files.

An :class:`Utterance` holds speech features and pose features at 20 fps, frame aligned
(``frames = samples // hop + 1``, the centred STFT count; the motion is trimmed or padded with
its last frame to match). Training clips are windows of ``clip_frames`` with hop ``clip_hop``
cut within each recording (never across two), plus left-right mirrored copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import MelConfig, read_wav, speech_features
from .bvh import Motion, read_bvh
from .coupling import speech_drive, upsample
from .gestures import MOTION_FPS, gesture_motion
from .poses import mirror_poses, motion_to_poses
from .speech import synthesize


@dataclass(frozen=True)
class Utterance:
    """One recording: speech features ``(F, 27)``, poses ``(F, 3 * joints)`` and the sources."""

    name: str
    speech: np.ndarray = field(repr=False)
    poses: np.ndarray = field(repr=False)
    audio: np.ndarray | None = field(default=None, repr=False)
    sample_rate: int = 0
    motion: Motion | None = field(default=None, repr=False)


def align(speech: np.ndarray, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut or pad (repeating the last pose) the poses to the number of speech frames."""
    frames = speech.shape[0]
    if poses.shape[0] < frames:
        poses = np.concatenate([poses, np.repeat(poses[-1:], frames - poses.shape[0], 0)])
    return speech, poses[:frames]


def synthetic_utterances(
    count: int, seed: int, joints: Sequence[str], *, speech_source: str = "prosody", fps: int = 20
) -> list[Utterance]:
    """``count`` synthetic utterances: offline speech (``speech_source``: "prosody" or "espeak", see
    :mod:`diffrepro.diffmotion.speech`) and gestures generated to follow it."""
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        audio, rate = synthesize(index, rng, speech_source)
        speech = speech_features(audio, rate, MelConfig(fps=fps))
        frames_60 = speech.shape[0] * (MOTION_FPS // fps)
        drive = upsample(speech_drive(speech, fps), fps, MOTION_FPS, frames_60)
        motion = gesture_motion(audio, rate, frames_60, rng, drive)
        poses = motion_to_poses(motion, joints, fps=fps)
        speech, poses = align(speech, poses)
        out.append(Utterance(f"utterance_{index:03d}", speech, poses, audio, rate, motion))
    return out


def folder_utterances(root: str | Path, joints: Sequence[str], fps: int = 20) -> list[Utterance]:
    """Recordings from ``root``: BVH and WAV files paired by name, either side by side or in the
    Trinity / GENEA layout (``root/bvh/*.bvh`` and ``root/audio/*.wav``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    bvh_dir = root / "bvh" if (root / "bvh").is_dir() else root
    wav_dir = root / "audio" if (root / "audio").is_dir() else root
    pairs = [(b, wav_dir / f"{b.stem}.wav") for b in sorted(bvh_dir.glob("*.bvh"))]
    pairs = [(b, w) for b, w in pairs if w.is_file()]
    if not pairs:
        raise ValueError(f"no BVH + WAV pairs with matching names found in {root}")
    out = []
    for bvh_path, wav_path in pairs:
        audio, rate = read_wav(wav_path)
        speech = speech_features(audio, rate, MelConfig(fps=fps))
        poses = motion_to_poses(read_bvh(bvh_path), joints, fps=fps)
        speech, poses = align(speech, poses)
        out.append(Utterance(bvh_path.stem, speech, poses, audio, rate))
    return out


def training_clips(
    utterances: Sequence[Utterance],
    clip_frames: int,
    clip_hop: int,
    joints: Sequence[str],
    *,
    mirror: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``(poses (N, clip, D), speech (N, clip, A))`` cut within each recording (a clip
    never spans two recordings: the seam between them is not motion), plus mirrored copies.
    A recording shorter than one clip gives no window."""
    pose_clips, speech_clips = [], []
    for utterance in utterances:
        frames = utterance.poses.shape[0]
        for start in range(0, frames - clip_frames + 1, clip_hop):
            pose_clips.append(utterance.poses[start : start + clip_frames])
            speech_clips.append(utterance.speech[start : start + clip_frames])
    if not pose_clips:
        longest = max((u.poses.shape[0] for u in utterances), default=0)
        raise ValueError(
            f"no recording holds one {clip_frames}-frame clip (the longest has {longest} frames)"
        )
    poses, speech = np.stack(pose_clips), np.stack(speech_clips)
    if mirror:
        poses = np.concatenate([poses, mirror_poses(poses, joints)])
        speech = np.concatenate([speech, speech])
    return poses.astype(np.float32), speech.astype(np.float32)
