"""The upper-body skeleton used by the synthetic data set, defined in code.

It uses the Trinity / GENEA joint names, so the same pose features (the 15 joints of
:data:`UPPER_BODY`) are read from it and from the real data. Units are centimetres, Y is up,
X is the character's left-right axis; arms hang down in the rest pose.
"""

from __future__ import annotations

from .bvh import Joint, Skeleton

UPPER_BODY = (
    "Spine", "Spine1", "Spine2", "Spine3", "Neck", "Neck1", "Head",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand",
    "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand",
)  # fmt: skip

ROTATION_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", *ROTATION_CHANNELS)

# (name, parent, offset, end site) in depth-first order
_LAYOUT: tuple[tuple[str, str | None, tuple[float, float, float], tuple | None], ...] = (
    ("Hips", None, (0.0, 95.0, 0.0), None),
    ("Spine", "Hips", (0.0, 8.0, 0.0), None),
    ("Spine1", "Spine", (0.0, 9.0, 0.0), None),
    ("Spine2", "Spine1", (0.0, 9.0, 0.0), None),
    ("Spine3", "Spine2", (0.0, 9.0, 0.0), None),
    ("Neck", "Spine3", (0.0, 12.0, 0.0), None),
    ("Neck1", "Neck", (0.0, 5.0, 0.0), None),
    ("Head", "Neck1", (0.0, 6.0, 0.0), (0.0, 18.0, 0.0)),
    ("RightShoulder", "Spine3", (-4.0, 9.0, 0.0), None),
    ("RightArm", "RightShoulder", (-15.0, 0.0, 0.0), None),
    ("RightForeArm", "RightArm", (0.0, -28.0, 0.0), None),
    ("RightHand", "RightForeArm", (0.0, -25.0, 0.0), (0.0, -18.0, 0.0)),
    ("LeftShoulder", "Spine3", (4.0, 9.0, 0.0), None),
    ("LeftArm", "LeftShoulder", (15.0, 0.0, 0.0), None),
    ("LeftForeArm", "LeftArm", (0.0, -28.0, 0.0), None),
    ("LeftHand", "LeftForeArm", (0.0, -25.0, 0.0), (0.0, -18.0, 0.0)),
)


def upper_body_skeleton() -> Skeleton:
    """The synthetic character: a 6-channel root ``Hips`` and the 15 upper-body joints (ZXY)."""
    names = [name for name, *_ in _LAYOUT]
    joints = tuple(
        Joint(
            name,
            -1 if parent is None else names.index(parent),
            offset,
            ROOT_CHANNELS if parent is None else ROTATION_CHANNELS,
            end,
        )
        for name, parent, offset, end in _LAYOUT
    )
    return Skeleton(joints)
