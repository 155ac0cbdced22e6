"""LoRA (low-rank adaptation) wrappers for Linear and Conv1d/2d layers.

``y = base(x) + (alpha / rank) · up(down(x))``: ``down`` has the base layer's kernel, stride
and padding and maps to ``rank`` channels, ``up`` is a 1×1 map back to the output channels.
``up`` starts at zero, so a freshly wrapped layer computes exactly what the base layer did.
The base weights are frozen; only ``down``/``up`` train.

``merge()`` folds the low-rank update into the base weight (one layer at inference cost) and keeps
the original weight so that ``unmerge()`` restores it bit for bit.

Wrapping renames the base parameters: ``<name>.weight`` becomes ``<name>.base.weight``; the LoRA
parameters are ``<name>.down.weight`` and ``<name>.up.weight``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

_CONV_TYPES = (nn.Conv1d, nn.Conv2d)


class LoRALayer(nn.Module):
    """Shared logic; use :class:`LoRALinear` or :class:`LoRAConv`."""

    base: nn.Linear | nn.Conv1d | nn.Conv2d
    down: nn.Linear | nn.Conv1d | nn.Conv2d
    up: nn.Linear | nn.Conv1d | nn.Conv2d

    def __init__(
        self, base: nn.Linear | nn.Conv1d | nn.Conv2d, rank: int, alpha: float | None
    ) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.base = base
        self.rank = rank
        self.scale = (rank if alpha is None else alpha) / rank
        self.merged = False
        self._original_weight: torch.Tensor | None = None
        base.requires_grad_(False)

    def _init_lora(self) -> None:
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:
            return out
        return out + self.scale * self.up(self.down(x))

    def delta_weight(self) -> torch.Tensor:
        """The update ``scale · up @ down`` in the shape of the base weight."""
        up = self.up.weight.reshape(self.up.weight.shape[0], self.rank)
        down = self.down.weight.reshape(self.rank, -1)
        return (self.scale * up @ down).reshape(self.base.weight.shape)

    @torch.no_grad()
    def merge(self) -> None:
        if self.merged:
            return
        self._original_weight = self.base.weight.detach().clone()
        self.base.weight += self.delta_weight().to(self.base.weight.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged or self._original_weight is None:
            return
        self.base.weight.copy_(self._original_weight)
        self._original_weight = None
        self.merged = False


class LoRALinear(LoRALayer):
    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float | None = None) -> None:
        super().__init__(base, rank, alpha)
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.down = nn.Linear(base.in_features, rank, bias=False, **kw)
        self.up = nn.Linear(rank, base.out_features, bias=False, **kw)
        self._init_lora()


class LoRAConv(LoRALayer):
    """LoRA for ``nn.Conv1d`` / ``nn.Conv2d`` (ungrouped)."""

    def __init__(
        self, base: nn.Conv1d | nn.Conv2d, rank: int = 4, alpha: float | None = None
    ) -> None:
        super().__init__(base, rank, alpha)
        if base.groups != 1:
            raise ValueError("LoRA is only defined for ungrouped convolutions")
        conv: Any = type(base)
        kw: dict[str, Any] = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.down = conv(
            base.in_channels,
            rank,
            base.kernel_size,
            stride=base.stride,
            padding=base.padding,
            dilation=base.dilation,
            padding_mode=base.padding_mode,
            bias=False,
            **kw,
        )
        self.up = conv(rank, base.out_channels, 1, bias=False, **kw)
        self._init_lora()


def wrap_lora(layer: nn.Module, rank: int = 4, alpha: float | None = None) -> LoRALayer:
    """The LoRA wrapper for one Linear or Conv1d/Conv2d layer."""
    if isinstance(layer, nn.Linear):
        return LoRALinear(layer, rank, alpha)
    if isinstance(layer, _CONV_TYPES):
        return LoRAConv(layer, rank, alpha)
    raise ValueError(
        f"no LoRA wrapper for {type(layer).__name__} (Linear, Conv1d and Conv2d are supported)"
    )


def apply_lora(
    model: nn.Module,
    layer_types: tuple[type[nn.Module], ...] = (nn.Linear,),
    *,
    rank: int = 4,
    alpha: float | None = None,
    include: Callable[[str, nn.Module], bool] | None = None,
) -> list[str]:
    """Wrap every layer of ``layer_types`` (optionally filtered by ``include(name, layer)``).

    Afterwards only LoRA parameters are trainable in ``model``. Returns the wrapped names.
    """
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, layer_types)
        and not _inside_lora(model, name)
        and name
        and (include is None or include(name, module))
    ]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, wrap_lora(module, rank, alpha))
    mark_only_lora_trainable(model)
    return [name for name, _ in targets]


def lora_layers(model: nn.Module) -> Iterator[LoRALayer]:
    return (m for m in model.modules() if isinstance(m, LoRALayer))


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [
        p
        for layer in lora_layers(model)
        for p in (*layer.down.parameters(), *layer.up.parameters())
    ]


def mark_only_lora_trainable(model: nn.Module) -> None:
    model.requires_grad_(False)
    for p in lora_parameters(model):
        p.requires_grad_(True)


def merge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model):
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model):
        layer.unmerge()


def _inside_lora(model: nn.Module, name: str) -> bool:
    parts = name.split(".")
    return any(
        isinstance(model.get_submodule(".".join(parts[:i])), LoRALayer)
        for i in range(1, len(parts))
    )
