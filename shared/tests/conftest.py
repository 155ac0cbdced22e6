"""Shared test setup for diffrepro-core.

Without CUDA, the Triton kernels are tested through Triton's interpreter on CPU tensors. The
interpreter is chosen when ``@triton.jit`` decorates a kernel, so ``TRITON_INTERPRET=1`` is set
here, before any test imports a kernel module.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
