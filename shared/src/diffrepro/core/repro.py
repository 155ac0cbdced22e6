"""Seeding, device selection and CPU thread policy shared by every command."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str | None) -> torch.device:
    """``"auto"``/``None`` → CUDA when available, else CPU; a clear error for a missing CUDA.

    Under torchrun (``LOCAL_RANK`` set) a CUDA device without an index is this rank's GPU.
    """
    if name in (None, "", "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from err
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r} (use cpu, cuda or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but this machine has no CUDA GPU")
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and device.index is not None and device.index >= count:
        raise ValueError(f"device {name!r} was asked for, but this machine has {count} CUDA GPU(s)")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


@contextmanager
def single_threaded_on_cpu(device: torch.device | str) -> Iterator[None]:
    """Run the block with one torch intra-op thread when ``device`` is the CPU.

    Tiny networks (the CPU demos) gain nothing from intra-op threads, and on a busy machine the
    threads mostly wait for each other: 30 DiffMotion training steps took 129 s with two threads
    and 18 s with one. The previous setting is restored afterwards.
    """
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
