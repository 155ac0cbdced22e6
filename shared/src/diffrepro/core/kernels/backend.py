"""Which backend runs attention (and the other fused kernels).

Precedence: an explicit ``backend=`` argument other than "auto", then the innermost
``attention_backend(...)`` context (``attention_backend("auto")`` restores the automatic choice
over the env var), then the environment variable ``DIFFREPRO_ATTENTION``, then ``auto``.

``auto`` picks ``triton`` for CUDA tensors in fp16/bf16/fp32 with head_dim <= 128 when triton is
installed, and ``sdpa`` otherwise. ``triton`` also runs on CPU tensors when ``TRITON_INTERPRET=1``
(the interpreter used by the tests). Nothing here imports triton.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from contextvars import ContextVar

import torch

BACKENDS = ("auto", "triton", "sdpa", "math")
ENV_VAR = "DIFFREPRO_ATTENTION"
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
TRITON_MAX_HEAD_DIM = 128

_forced: ContextVar[str | None] = ContextVar("diffrepro_attention_backend", default=None)


def check_backend_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


@contextlib.contextmanager
def attention_backend(name: str) -> Iterator[None]:
    """Force a backend ("auto", "triton", "sdpa" or "math") inside a ``with`` block."""
    token = _forced.set(check_backend_name(name))
    try:
        yield
    finally:
        _forced.reset(token)


def requested_backend(backend: str = "auto") -> str:
    """The backend asked for: the argument, else the context, else the env var, else auto."""
    if check_backend_name(backend) != "auto":
        return backend
    forced = _forced.get()
    if forced is not None:
        return forced
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env:
        if env not in BACKENDS:
            raise ValueError(
                f"{ENV_VAR}={env!r} is not a backend; choose one of {', '.join(BACKENDS)}"
            )
        return env
    return "auto"


TRITON_INSTALLED = (
    importlib.util.find_spec("triton") is not None
)  # locates triton, does not import it


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_device_problem(device: torch.device) -> str | None:
    """Why Triton kernels cannot run on ``device`` (None when they can)."""
    if not TRITON_INSTALLED:
        return "triton is not installed (pip install 'diffrepro-core[triton]', Linux only)"
    if device.type == "cuda":
        return None
    if device.type == "cpu" and interpreter_enabled():
        return None
    return (
        f"tensors are on {device.type}; triton needs CUDA (or TRITON_INTERPRET=1 with CPU tensors)"
    )


def triton_attention_problem(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str | None:
    """Why the Triton attention kernel cannot take these inputs (None when it can)."""
    if q.dtype not in TRITON_DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        return f"dtypes {q.dtype}/{k.dtype}/{v.dtype}; triton needs fp16, bf16 or fp32 for q, k, v"
    if not (q.shape[-1] == k.shape[-1] == v.shape[-1]):
        return f"head dims q={q.shape[-1]}, k={k.shape[-1]}, v={v.shape[-1]} differ"
    if q.shape[-1] > TRITON_MAX_HEAD_DIM:
        return f"head_dim {q.shape[-1]} > {TRITON_MAX_HEAD_DIM}"
    return triton_device_problem(q.device)


def select_attention_backend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "auto"
) -> str:
    """Resolve ``backend`` to "triton", "sdpa" or "math" for these inputs.

    A forced "triton" that cannot run raises a ValueError saying why.
    """
    name = requested_backend(backend)
    if name == "triton":
        problem = triton_attention_problem(q, k, v)
        if problem is not None:
            raise ValueError(f"attention backend 'triton' cannot run: {problem}")
        return name
    if name == "auto":
        on_cuda = q.device.type == "cuda"
        return "triton" if on_cuda and triton_attention_problem(q, k, v) is None else "sdpa"
    return name


def use_triton_kernels(x: torch.Tensor, backend: str = "auto") -> bool:
    """Whether the other fused kernels (GroupNorm+SiLU) should run in Triton for ``x``.

    They follow the same switch: "triton" forces them (raising if impossible), "sdpa"/"math"
    mean plain torch, and "auto" uses Triton for CUDA tensors when triton is installed.
    """
    name = requested_backend(backend)
    if name == "triton":
        problem = triton_device_problem(x.device)
        if problem is not None:
            raise ValueError(f"kernel backend 'triton' cannot run: {problem}")
        return True
    if name == "auto":
        return x.device.type == "cuda" and x.dtype in TRITON_DTYPES and TRITON_INSTALLED
    return False
