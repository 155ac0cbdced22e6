"""Motion statistics for the demo: wrist height (the coupling), kinematics, sample diversity.

Positions come from forward kinematics of the poses on the in-code skeleton (centimetres), so
speeds are in cm/s, accelerations in cm/s^2 and jerks in cm/s^3 at the 20 fps pose rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .bvh import Skeleton
from .kinematics import joint_positions
from .poses import poses_to_motion

HANDS = ("RightHand", "LeftHand")


def positions(
    poses: np.ndarray, skeleton: Skeleton, joints: Sequence[str], fps: float
) -> np.ndarray:
    """Global joint positions ``(frames, skeleton joints, 3)`` of exponential-map poses."""
    return joint_positions(poses_to_motion(poses, skeleton, joints, fps))


def hand_speed(pos: np.ndarray, skeleton: Skeleton, fps: float) -> np.ndarray:
    """Summed speed of both wrists per frame ``(frames - 1,)`` in cm/s."""
    hands = [skeleton.index(name) for name in HANDS]
    return np.linalg.norm(np.diff(pos[:, hands], axis=0), axis=-1).sum(-1) * fps


def wrist_height(pos: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Mean height (y, cm) of both wrists per frame ``(frames,)``: how far the arms are raised."""
    hands = [skeleton.index(name) for name in HANDS]
    return pos[:, hands, 1].mean(-1)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a**2).sum() * (b**2).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def kinematics(pos: np.ndarray, fps: float) -> dict[str, float]:
    """Mean joint speed, acceleration and jerk magnitudes over all joints and frames."""
    velocity = np.diff(pos, axis=0) * fps
    acceleration = np.diff(velocity, axis=0) * fps
    jerk = np.diff(acceleration, axis=0) * fps
    return {
        "speed": float(np.linalg.norm(velocity, axis=-1).mean()),
        "acceleration": float(np.linalg.norm(acceleration, axis=-1).mean()),
        "jerk": float(np.linalg.norm(jerk, axis=-1).mean()),
    }


def diversity(samples: np.ndarray) -> float:
    """Mean pairwise distance between samples ``(K, frames, joints, 3)`` for the same speech,
    averaged over frames and joints (cm)."""
    k = samples.shape[0]
    if k < 2:
        raise ValueError("diversity needs at least two samples")
    distances = [
        np.linalg.norm(samples[i] - samples[j], axis=-1).mean()
        for i in range(k) for j in range(i + 1, k)
    ]  # fmt: skip
    return float(np.mean(distances))


def speech_energy(speech: np.ndarray) -> np.ndarray:
    """A loudness proxy from log-mel features ``(frames, bands)``: log of the summed mel power."""
    return np.log(np.exp(speech).sum(axis=1) + 1e-10)
