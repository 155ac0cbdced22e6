"""Exponential moving average of a model's parameters.

After each optimiser step, ``ema.update(model)`` sets ``θ_ema ← decay · θ_ema + (1 − decay) · θ``
for every floating-point parameter, and copies buffers. guided-diffusion uses decay 0.9999.
``copy_to(model)`` writes the averages into a model (for sampling);
``state_dict``/``load_state_dict`` make it part of a checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.9999) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for name, value in model.state_dict().items():
            avg = self.shadow[name]
            if name in params and avg.is_floating_point():
                avg.lerp_(value.to(avg.dtype), 1.0 - self.decay)
            else:
                avg.copy_(value)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.shadow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"EMA state does not match the model: {sorted(missing)[:10]}")
        for k, v in state.items():
            self.shadow[k].copy_(v)
