"""Rotation conversions: Euler angles (any BVH channel order) <-> matrices <-> exponential maps.

All functions are vectorised over leading dimensions and work in float64 numpy.
A BVH channel order such as ``"ZXY"`` means the rotation ``R = Rz(z) @ Rx(x) @ Ry(y)``
(intrinsic rotations, the order in which the channels are listed). Angles are in degrees,
as in BVH files; exponential maps (axis * angle) are in radians.
"""

from __future__ import annotations

import numpy as np

AXES = {"X": 0, "Y": 1, "Z": 2}
ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
_GIMBAL_EPS = 1e-9


def _check_order(order: str) -> tuple[int, int, int]:
    if order not in ORDERS:
        raise ValueError(f"unknown rotation order {order!r}; expected one of {', '.join(ORDERS)}")
    return AXES[order[0]], AXES[order[1]], AXES[order[2]]


def axis_matrix(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices about one coordinate axis by ``angle`` radians, shape ``(..., 3, 3)``."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*np.shape(angle), 3, 3))
    i, j = (axis + 1) % 3, (axis + 2) % 3
    out[..., axis, axis] = 1.0
    out[..., i, i], out[..., j, j] = c, c
    out[..., i, j], out[..., j, i] = -s, s
    return out


def euler_to_matrix(degrees: np.ndarray, order: str) -> np.ndarray:
    """Euler angles ``(..., 3)`` in degrees, listed in ``order``, to matrices ``(..., 3, 3)``."""
    axes = _check_order(order)
    radians = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    first, second, third = (axis_matrix(axes[k], radians[..., k]) for k in range(3))
    return first @ second @ third


def matrix_to_euler(matrix: np.ndarray, order: str) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix`; the middle angle lies in [-90, 90] degrees.

    At gimbal lock (middle angle +-90) the third angle is set to zero.
    """
    i, j, k = _check_order(order)
    m = np.asarray(matrix, dtype=np.float64)
    sign = 1.0 if (j - i) % 3 == 1 else -1.0  # +1 for cyclic orders (XYZ, YZX, ZXY)
    sin_b = np.clip(sign * m[..., i, k], -1.0, 1.0)
    b = np.arcsin(sin_b)
    locked = np.abs(sin_b) > 1.0 - _GIMBAL_EPS
    a = np.where(
        locked,
        np.arctan2(sign * m[..., k, j], m[..., j, j]),
        np.arctan2(-sign * m[..., j, k], m[..., k, k]),
    )
    c = np.where(locked, 0.0, np.arctan2(-sign * m[..., i, j], m[..., i, i]))
    return np.rad2deg(np.stack([a, b, c], axis=-1))


def expmap_to_matrix(expmap: np.ndarray) -> np.ndarray:
    """Exponential maps (axis * angle, radians) ``(..., 3)`` to matrices (Rodrigues' formula)."""
    w = np.asarray(expmap, dtype=np.float64)
    theta = np.linalg.norm(w, axis=-1)[..., None, None]
    zero = np.zeros(w.shape[:-1])
    k = np.stack(
        [
            np.stack([zero, -w[..., 2], w[..., 1]], -1),
            np.stack([w[..., 2], zero, -w[..., 0]], -1),
            np.stack([-w[..., 1], w[..., 0], zero], -1),
        ],
        axis=-2,
    )
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta**2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta**2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """Matrices ``(..., 3, 3)`` to unit quaternions ``(..., 4)`` as (w, x, y, z) with w >= 0."""
    m = np.asarray(matrix, dtype=np.float64)
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # four candidate (unnormalised) quaternions; pick the numerically largest per element
    candidates = np.stack(
        [
            np.stack(
                [
                    1 + trace,
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                -1,
            ),
            np.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + 2 * m[..., 0, 0] - trace,
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            np.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 + 2 * m[..., 1, 1] - trace,
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            np.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 + 2 * m[..., 2, 2] - trace,
                ],
                -1,
            ),
        ],
        axis=-2,
    )
    diag = np.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = np.take_along_axis(candidates, np.argmax(diag, -1)[..., None, None], axis=-2)[..., 0, :]
    q = best / np.linalg.norm(best, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def matrix_to_expmap(matrix: np.ndarray) -> np.ndarray:
    """Matrices ``(..., 3, 3)`` to exponential maps with angle in [0, pi]."""
    q = matrix_to_quaternion(matrix)
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    scale = np.where(sin_half < 1e-12, 2.0, angle / np.where(sin_half < 1e-12, 1.0, sin_half))
    return q[..., 1:] * scale


def euler_to_expmap(degrees: np.ndarray, order: str) -> np.ndarray:
    """Euler angles in degrees (``order``) to exponential maps in radians."""
    return matrix_to_expmap(euler_to_matrix(degrees, order))


def expmap_to_euler(expmap: np.ndarray, order: str) -> np.ndarray:
    """Exponential maps in radians to Euler angles in degrees (``order``)."""
    return matrix_to_euler(expmap_to_matrix(expmap), order)
