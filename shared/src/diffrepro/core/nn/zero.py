"""``zero_module``: zero a module's parameters in place (output layers that start as a no-op)."""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def zero_module(module: M) -> M:
    """Zero every parameter of ``module`` and return it."""
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    return module
