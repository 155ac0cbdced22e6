"""Operators: exact adjoints (float64 dot-product test) and pseudo-inverse identities."""

import pytest
import torch

from diffrepro.adir.kernels import bicubic_taps, circulant_matrix, uniform_taps
from diffrepro.adir.operators import (
    ConvolutionOperator,
    CustomOperator,
    MaskOperator,
    adjoint_mismatch,
    spectral_norm_sq,
)
from diffrepro.adir.tasks import TASKS, TaskConfig, make_operator, measure, sigma_from_255

SIZE = 16
NOT_KERNEL = [t for t in TASKS if t != "deblur_kernel"]


def operator(task, cfg=None):
    kernel = torch.rand(5, 3, generator=torch.Generator().manual_seed(3))
    return make_operator(task, SIZE, cfg, kernel=kernel if task == "deblur_kernel" else None)


def rand(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("task", TASKS)
def test_adjoint_dot_product(task):
    op = operator(task)
    x = rand(2, 3, SIZE, SIZE)
    assert adjoint_mismatch(op, x, torch.Generator().manual_seed(1)) < 1e-10


@pytest.mark.parametrize("task", TASKS)
def test_pinv_is_a_generalised_inverse(task):
    op = operator(task, TaskConfig(blur_pinv_rtol=1e-7))  # blur A⁺ is truncated by default
    x = rand(2, 3, SIZE, SIZE)
    ax = op.forward(x)
    torch.testing.assert_close(op.forward(op.pinv(ax)), ax, rtol=1e-8, atol=1e-8)  # A A⁺ A = A
    pinv_ax = op.pinv(ax)
    torch.testing.assert_close(op.pinv(op.forward(pinv_ax)), pinv_ax, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("task", ["sr2_pool", "sr4_pool", "sr8_pool", "sr4", "colorize", "denoise"])
def test_pinv_is_right_inverse_for_full_row_rank(task):
    op = operator(task)
    y = op.forward(rand(1, 3, SIZE, SIZE))
    u = rand(*y.shape, seed=5)
    torch.testing.assert_close(op.forward(op.pinv(u)), u, rtol=1e-8, atol=1e-8)  # A A⁺ = I


def test_mask_pinv_is_identity_on_observed_pixels():
    op = operator("inpaint_random")
    y = op.forward(rand(1, 3, SIZE, SIZE))
    torch.testing.assert_close(op.forward(op.pinv(y)), y)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_average_pool_has_scaled_orthonormal_rows(factor):
    op = make_operator(f"sr{factor}_pool", SIZE)
    assert spectral_norm_sq(op, (1, 1, SIZE, SIZE)) == pytest.approx(factor**-2, rel=1e-6)
    reference = torch.nn.functional.avg_pool2d(x := rand(1, 3, SIZE, SIZE), factor)
    torch.testing.assert_close(op.forward(x), reference)


def test_bicubic_taps_are_symmetric_and_normalised():
    taps = bicubic_taps(4)
    assert taps.numel() == 16
    torch.testing.assert_close(taps, taps.flip(0))
    assert float(taps.sum()) == pytest.approx(1.0)
    constant = torch.ones(1, 1, SIZE, SIZE, dtype=torch.float64)
    torch.testing.assert_close(
        operator("sr4").forward(constant), torch.ones(1, 1, 4, 4, dtype=torch.float64)
    )


def test_blur_is_circular_and_contractive():
    op = make_operator("deblur_uniform", SIZE, TaskConfig(blur_size=5))
    x = rand(1, 1, SIZE, SIZE)
    shifted = torch.roll(x, (3, -2), (-2, -1))
    torch.testing.assert_close(op.forward(shifted), torch.roll(op.forward(x), (3, -2), (-2, -1)))
    assert spectral_norm_sq(op, (1, 1, SIZE, SIZE)) <= 1 + 1e-9


def test_fft_convolution_matches_separable_blur():
    taps = uniform_taps(5)
    separable = make_operator("deblur_uniform", SIZE)
    fft = ConvolutionOperator(torch.outer(taps, taps), (SIZE, SIZE))
    x = rand(1, 3, SIZE, SIZE)
    torch.testing.assert_close(fft.forward(x), separable.forward(x))
    torch.testing.assert_close(circulant_matrix(SIZE, taps), circulant_matrix(SIZE, taps).T)


def test_custom_operator_and_noise_scale():
    op = CustomOperator(lambda x: 2 * x, lambda y: 2 * y)
    assert adjoint_mismatch(op, rand(1, 3, 4, 4)) < 1e-12
    assert not op.has_pinv
    with pytest.raises(ValueError, match="pseudo-inverse"):
        op.pinv(rand(1, 3, 4, 4))
    assert sigma_from_255(10) == pytest.approx(20 / 255)
    x = torch.zeros(4, 3, 32, 32)
    noisy = measure(make_operator("denoise", 32), x, 0.1, torch.Generator().manual_seed(0))
    assert float(noisy.std()) == pytest.approx(0.1, rel=0.05)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown task"):
        make_operator("sr3", SIZE)
    with pytest.raises(ValueError, match="divisible"):
        make_operator("sr8", 12)
    with pytest.raises(ValueError, match="kernel"):
        make_operator("deblur_kernel", SIZE)
    with pytest.raises(ValueError, match="only 0"):
        MaskOperator(torch.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="spatial size"):
        make_operator("sr2", SIZE).forward(torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("factor", [2, 4])
def test_bicubic_sr_matches_torch_antialiased_bicubic_away_from_the_border(factor):
    # Our A is PyTorch's antialiased bicubic downsampling (Keys a = -0.5) with circular
    # boundaries: the outputs agree exactly wherever no tap wraps around (2 output pixels in).
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = make_operator(f"sr{factor}", 32).forward(x)
    ref = torch.nn.functional.interpolate(
        x, scale_factor=1 / factor, mode="bicubic", antialias=True, align_corners=False
    )
    torch.testing.assert_close(ours[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2], rtol=0, atol=1e-12)
