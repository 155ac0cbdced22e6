import numpy as np
import pytest

from diffrepro.diffmotion.rotations import (
    ORDERS,
    axis_matrix,
    euler_to_expmap,
    euler_to_matrix,
    expmap_to_euler,
    expmap_to_matrix,
    matrix_to_euler,
    matrix_to_expmap,
)


def random_euler(rng, n=200):
    angles = rng.uniform(-179.0, 179.0, (n, 3))
    angles[:, 1] = rng.uniform(-89.0, 89.0, n)
    return angles


@pytest.mark.parametrize("order", ORDERS)
def test_euler_matrix_is_the_product_of_axis_rotations(order):
    rng = np.random.default_rng(0)
    angles = random_euler(rng, 5)
    expected = np.eye(3)
    for axis, angle in zip(order, np.deg2rad(angles[0])):
        expected = expected @ axis_matrix("XYZ".index(axis), angle)
    np.testing.assert_allclose(euler_to_matrix(angles[0], order), expected, atol=1e-12)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_matrix_expmap_round_trips(order):
    rng = np.random.default_rng(1)
    angles = random_euler(rng)
    matrices = euler_to_matrix(angles, order)
    np.testing.assert_allclose(matrix_to_euler(matrices, order), angles, atol=1e-9)
    expmaps = matrix_to_expmap(matrices)
    np.testing.assert_allclose(expmap_to_matrix(expmaps), matrices, atol=1e-12)
    np.testing.assert_allclose(
        expmap_to_euler(euler_to_expmap(angles, order), order), angles, atol=1e-9
    )


@pytest.mark.parametrize("order", ORDERS)
def test_gimbal_lock_still_gives_the_same_rotation(order):
    angles = np.array([[30.0, 90.0, -20.0], [10.0, -90.0, 45.0]])
    matrices = euler_to_matrix(angles, order)
    np.testing.assert_allclose(
        euler_to_matrix(matrix_to_euler(matrices, order), order), matrices, atol=1e-9
    )


def test_expmap_is_axis_times_angle():
    axis = np.array([1.0, 2.0, -2.0]) / 3.0
    matrix = expmap_to_matrix(0.7 * axis)
    np.testing.assert_allclose(matrix @ axis, axis, atol=1e-12)  # the axis is fixed
    assert np.isclose(np.arccos((np.trace(matrix) - 1) / 2), 0.7)
    np.testing.assert_allclose(matrix_to_expmap(matrix), 0.7 * axis, atol=1e-12)
    np.testing.assert_allclose(matrix_to_expmap(np.eye(3)), np.zeros(3))
    np.testing.assert_allclose(expmap_to_matrix(np.array([1e-10, 0, 0])), np.eye(3), atol=1e-9)


def test_unknown_order_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown rotation order 'XXY'"):
        euler_to_matrix(np.zeros(3), "XXY")
