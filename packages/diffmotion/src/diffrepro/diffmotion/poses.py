"""Pose features: BVH motion <-> per-frame exponential maps of the selected joints.

As in the StyleGestures pipeline DiffMotion uses, the root ("hip-centric") translation and
rotation are zeroed and dropped, each selected joint contributes the exponential map
(axis * angle, radians) of its rotation, and joints are chosen by name. Going back, the
selected joints get their rotations in their own channel order; every other channel
(root included) is zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bvh import Motion, Skeleton, resample
from .rotations import euler_to_expmap, expmap_to_euler


def _rotation_columns(skeleton: Skeleton, name: str) -> tuple[list[int], str]:
    joint = skeleton.joints[skeleton.index(name)]
    if len(joint.rotation_order) != 3:
        raise ValueError(f"joint {name!r} has no rotation channels")
    start = skeleton.channel_slice(name).start
    columns = [start + k for k, c in enumerate(joint.channels) if c.endswith("rotation")]
    return columns, joint.rotation_order


def motion_to_poses(motion: Motion, joints: Sequence[str], fps: float | None = None) -> np.ndarray:
    """Exponential maps ``(frames, 3 * len(joints))`` of the named joints, optionally resampled."""
    if fps is not None and abs(motion.fps - fps) > 1e-6:
        motion = resample(motion, fps)
    parts = []
    for name in joints:
        columns, order = _rotation_columns(motion.skeleton, name)
        parts.append(euler_to_expmap(motion.values[:, columns], order))
    return np.concatenate(parts, axis=1)


def poses_to_motion(
    poses: np.ndarray, skeleton: Skeleton, joints: Sequence[str], fps: float
) -> Motion:
    """Inverse of :func:`motion_to_poses` on ``skeleton``; other channels are zero."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3 * len(joints):
        raise ValueError(f"poses have shape {poses.shape}, expected (frames, {3 * len(joints)})")
    values = np.zeros((poses.shape[0], skeleton.num_channels))
    for k, name in enumerate(joints):
        columns, order = _rotation_columns(skeleton, name)
        values[:, columns] = expmap_to_euler(poses[:, 3 * k : 3 * k + 3], order)
    return Motion(skeleton, 1.0 / fps, values)


def mirror_poses(poses: np.ndarray, joints: Sequence[str]) -> np.ndarray:
    """Mirror left <-> right across the X (lateral) axis: swap Left*/Right* joints and map each
    exponential map (x, y, z) to (x, -y, -z). Mirroring twice is the identity."""
    poses = np.asarray(poses)
    order = []
    for name in joints:
        if name.startswith("Left"):
            twin = "Right" + name[4:]
        elif name.startswith("Right"):
            twin = "Left" + name[5:]
        else:
            twin = name
        order.append(list(joints).index(twin) if twin in joints else list(joints).index(name))
    swapped = poses.reshape(*poses.shape[:-1], len(joints), 3)[..., order, :]
    return (swapped * np.array([1.0, -1.0, -1.0])).reshape(poses.shape)


@dataclass(frozen=True)
class Standardizer:
    """Per-dimension standardisation (StandardScaler's mean_ / scale_); saved with the model."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, data: np.ndarray, floor: float = 1e-6) -> Standardizer:
        flat = np.asarray(data, dtype=np.float64).reshape(-1, data.shape[-1])
        return cls(flat.mean(0), np.maximum(flat.std(0), floor))

    def transform(self, data: np.ndarray) -> np.ndarray:
        return (data - self.mean) / self.std

    def inverse(self, data: np.ndarray) -> np.ndarray:
        return data * self.std + self.mean
