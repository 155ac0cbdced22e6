"""Seeding and device selection."""

from __future__ import annotations

import pytest
import torch

from diffrepro.core.repro import resolve_device, seed_everything


def test_seed_everything_repeats_draws() -> None:
    generator = seed_everything(3)
    first = (torch.rand(2), torch.rand(2, generator=generator))
    generator = seed_everything(3)
    assert torch.equal(first[0], torch.rand(2))
    assert torch.equal(first[1], torch.rand(2, generator=generator))


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu-ish")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_missing_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_single_threaded_on_cpu_restores_the_setting() -> None:
    from diffrepro.core.repro import single_threaded_on_cpu

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with single_threaded_on_cpu("cpu"):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with single_threaded_on_cpu("meta"):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
