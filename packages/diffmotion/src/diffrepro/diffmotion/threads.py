"""Run small CPU workloads on one thread.

DiffMotion's training and frame-by-frame sampling are made of many tiny operations (1-2 channel
convolutions over 49 values, small LSTM steps). On CPU, intra-op threads only add
synchronisation: on a busy 2-core machine 30 training steps took 129 s with two threads and 18 s
with one. Training and sampling therefore run single-threaded on CPU, restoring the setting after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_threaded_on_cpu(device: torch.device | str) -> Iterator[None]:
    """Set torch's intra-op threads to 1 while the block runs, when ``device`` is the CPU."""
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
