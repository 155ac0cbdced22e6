"""Switchable speed-ups for inference and training: channels-last layout, ``torch.compile`` with a
clean fallback, and bf16 autocast only where the CPU computes bf16 natively.

- :func:`channels_last` (a context manager) puts a module's 4-D weights in the channels-last
  memory layout for the duration of a ``with`` block and restores the contiguous layout after,
  so checkpoints and callers see nothing. Convolutions on CPU (oneDNN) are faster in that layout;
  the inputs follow (:func:`to_channels_last`). Results agree with the contiguous layout within
  float32 rounding (convolution algorithms differ), which the parity tolerances cover.
- :func:`maybe_compile` returns ``torch.compile(fn)`` when a compiler is present (inductor's CPU
  backend needs a C++ compiler; its CUDA backend needs triton) and ``fn`` itself otherwise,
  with one notice naming why. A compile error at the first call also falls back to eager, once,
  with a notice.
- :func:`bf16_autocast` is ``torch.autocast("cpu", torch.bfloat16)`` only where the CPU has
  native bf16 (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than float32 (see
  docs/performance.md), so it is a no-op with one notice.

The measured effect of each switch is in ``shared/benchmarks/bench_speedups.py``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

_NOTICES: set[str] = set()


def notice(message: str) -> None:
    """Warn once per distinct message (a fallback is worth one line, not one per call)."""
    if message not in _NOTICES:
        _NOTICES.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


@contextlib.contextmanager
def channels_last(module: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """``with channels_last(model):`` runs ``model`` with channels-last weights, then restores."""
    if not enabled:
        yield module
        return
    module.to(memory_format=torch.channels_last)
    try:
        yield module
    finally:
        module.to(memory_format=torch.contiguous_format)


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """A 4-D floating tensor in channels-last layout (same values); other tensors unchanged."""
    if x.ndim == 4 and x.is_floating_point():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def compiler_problem(device: str | torch.device = "cpu") -> str | None:
    """Why ``torch.compile`` (inductor) cannot generate code for ``device`` here, or None."""
    kind = torch.device(device).type
    if kind == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "inductor on CUDA needs triton, which is not installed"
        return None
    compiler = os.environ.get("CXX", "").split(" ")[0] or "g++"
    if shutil.which(compiler) is None and shutil.which("c++") is None:
        return f"inductor on CPU needs a C++ compiler ({compiler} / c++ not found on PATH)"
    return None


def maybe_compile(
    fn: Callable[..., Any], *, enabled: bool = True, device: str | torch.device = "cpu", **kwargs
) -> Callable[..., Any]:
    """``torch.compile(fn, **kwargs)`` where it can work, else ``fn`` (one notice says why)."""
    if not enabled:
        return fn
    problem = compiler_problem(device)
    if problem is not None:
        notice(f"torch.compile disabled: {problem}; running eagerly")
        return fn
    compiled = torch.compile(fn, **kwargs)
    state = {"failed": False}

    @functools.wraps(fn)
    def run(*args: Any, **kw: Any) -> Any:
        if state["failed"]:
            return fn(*args, **kw)
        try:
            return compiled(*args, **kw)
        except (torch._dynamo.exc.BackendCompilerFailed, torch._dynamo.exc.Unsupported) as err:
            state["failed"] = True
            notice(f"torch.compile failed ({type(err).__name__}); running eagerly")
            return fn(*args, **kw)

    return run


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_autocast(device: str | torch.device = "cpu", enabled: bool = True):
    """bf16 autocast where it pays: CUDA, or a CPU with native bf16; else a no-op + notice."""
    kind = torch.device(device).type
    if not enabled:
        return contextlib.nullcontext()
    if kind == "cpu" and not cpu_has_native_bf16():
        notice("bf16 autocast skipped: this CPU has no native bf16 (emulated bf16 is slower)")
        return contextlib.nullcontext()
    return torch.autocast(kind, dtype=torch.bfloat16)
