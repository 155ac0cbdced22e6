"""Forward kinematics: global joint positions of a BVH motion (for metrics and drawing)."""

from __future__ import annotations

import numpy as np

from .bvh import Motion
from .rotations import euler_to_matrix


def joint_positions(motion: Motion) -> np.ndarray:
    """Global positions ``(frames, joints, 3)`` of every joint (root translation included)."""
    skeleton, values = motion.skeleton, motion.values
    frames = values.shape[0]
    positions = np.zeros((frames, len(skeleton.joints), 3))
    rotations = np.zeros((frames, len(skeleton.joints), 3, 3))
    start = 0
    for k, joint in enumerate(skeleton.joints):
        channels = values[:, start : start + len(joint.channels)]
        start += len(joint.channels)
        offset = np.broadcast_to(np.array(joint.offset, dtype=np.float64), (frames, 3))
        if joint.has_position:
            axes = [c for c in joint.channels if c.endswith("position")]
            columns = [joint.channels.index(c) for c in axes]
            translation = np.zeros((frames, 3))
            translation[:, ["XYZ".index(c[0]) for c in axes]] = channels[:, columns]
            offset = offset + translation
        if joint.rotation_order:
            columns = [i for i, c in enumerate(joint.channels) if c.endswith("rotation")]
            local = euler_to_matrix(channels[:, columns], joint.rotation_order)
        else:
            local = np.broadcast_to(np.eye(3), (frames, 3, 3))
        if joint.parent < 0:
            positions[:, k] = offset
            rotations[:, k] = local
        else:
            parent_rot = rotations[:, joint.parent]
            positions[:, k] = positions[:, joint.parent] + np.einsum(
                "fij,fj->fi", parent_rot, offset
            )
            rotations[:, k] = parent_rot @ local
    return positions
