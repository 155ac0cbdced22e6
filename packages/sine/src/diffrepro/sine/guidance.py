"""SINE's model-based classifier-free guidance (spec §3.3).

With the pretrained model's unconditional and edit-prompt outputs ``eps_u``, ``eps_c`` and the
outputs ``eps_i`` of the fine-tuned guide models (each under its own identifier prompt) whose
window holds the step's timestep ``t``::

    eps = eps_u + w * ((1 - sum_i v_i) * eps_c + sum_i v_i * eps_i - eps_u)

``v`` is the weight on the FINE-TUNED model (the official single-model script's
``--cond_beta`` weights the pretrained one: ``v = 1 - cond_beta``). Outside every window this is
plain CFG ``eps_u + w * (eps_c - eps_u)`` and the guides are not evaluated. The unconditional
branch is always the pretrained model with the pretrained encoder's empty prompt. Windows:
``inclusive`` (the LDM samplers: ``k_min <= t <= k_max``) or ``strict`` (the diffusers port:
``k_min < t <= k_max``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

RULES = ("inclusive", "strict")


@dataclass(frozen=True)
class Window:
    k_min: int = 500
    k_max: int = 1000
    rule: str = "inclusive"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"window rule must be one of {RULES}, got {self.rule!r}")
        if self.k_min > self.k_max:
            raise ValueError(f"window K {self.k_min} lies above its upper end {self.k_max}")

    def contains(self, t: int) -> bool:
        above = self.k_min <= t if self.rule == "inclusive" else self.k_min < t
        return above and t <= self.k_max


@dataclass
class Guide:
    """A fine-tuned model ``unet(x, t, context)`` under its identifier prompt's ``context``."""

    unet: Callable[[Tensor, Tensor, Tensor], Tensor]
    context: Tensor
    v: float
    window: Window

    def __post_init__(self) -> None:
        if not math.isfinite(self.v):
            raise ValueError(f"the guide weight v must be finite, got {self.v}")


def mix(eps_u: Tensor, eps_c: Tensor, eps_guides: Sequence[Tensor], vs: Sequence[float], w: float):
    """The guidance equation above for the active guides (none: plain CFG)."""
    mixed = (1.0 - sum(vs)) * eps_c
    for eps_i, v in zip(eps_guides, vs, strict=True):
        mixed = mixed + v * eps_i
    return eps_u + w * (mixed - eps_u)


def active_steps(timesteps: Sequence[int], window: Window) -> int:
    """How many of the sampler's timesteps fall in ``window``."""
    return sum(window.contains(int(t)) for t in timesteps)


def model_guided(
    pretrained: Callable[[Tensor, Tensor, Tensor], Tensor],
    cond: Tensor,
    uncond: Tensor,
    guides: Sequence[Guide],
    scale: float,
) -> Callable[[Tensor, Tensor], Tensor]:
    """``model(x, t)`` for the samplers: one batched pretrained call on ``[uncond, cond]``,
    plus one call per guide whose window holds ``t`` (all samples share one timestep)."""

    def guided(x: Tensor, t: Tensor) -> Tensor:
        both = pretrained(torch.cat([x, x]), torch.cat([t, t]), torch.cat([uncond, cond]))
        out_u, out_c = both.chunk(2)
        step = int(t.reshape(-1)[0])
        active = [g for g in guides if g.window.contains(step)]
        eps_guides = [g.unet(x, t, g.context) for g in active]
        return mix(out_u, out_c, eps_guides, [g.v for g in active], scale)

    return guided
