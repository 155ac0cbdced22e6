"""The final projection lands the measurement residual on the noise level σ."""

import pytest
import torch

from diffrepro.adir.consistency import discrepancy_projection, residual_rms
from diffrepro.adir.tasks import make_operator, measure


def images(seed, n=2):
    return (
        torch.rand(n, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        * 2
        - 1
    )


@pytest.mark.parametrize("task", ["sr4", "deblur_uniform", "inpaint_box", "colorize", "denoise"])
def test_projection_brings_the_residual_exactly_to_sigma(task):
    op = make_operator(task, 16)
    y = measure(op, images(0), 0.05, torch.Generator().manual_seed(1)).double()
    x = images(2)  # far from the measurement
    assert (residual_rms(op, x, y) > 0.1).all()
    out = discrepancy_projection(op, x, y, 0.05)
    torch.testing.assert_close(
        residual_rms(op, out, y), torch.full((2,), 0.05, dtype=torch.float64)
    )


def test_projection_changes_only_measured_components_and_keeps_consistent_images():
    op = make_operator("inpaint_box", 16)
    mask = op.mask.bool().expand(2, 3, 16, 16)
    y = op.forward(images(3))
    x = images(4)
    out = discrepancy_projection(op, x, y, 0.05)
    assert torch.equal(out[~mask], x[~mask])  # the hole (null space of A) is untouched
    close = y + 0.01 * op.forward(images(5))  # already below σ: left alone
    assert torch.equal(discrepancy_projection(op, close, y, 0.05), close)


def test_residual_counts_only_measured_pixels_of_a_mask():
    op = make_operator("inpaint_box", 16)
    x = torch.zeros(1, 3, 16, 16)
    y = op.forward(torch.ones(1, 3, 16, 16))
    assert float(residual_rms(op, x, y)) == pytest.approx(1.0)
