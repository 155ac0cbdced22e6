"""Does the motion generator use its conditioning? A denoising probe at one fixed step.

For every held-out clip and frame n >= 1, the true frame x^n is noised to step ``t`` with one
fixed noise draw, and the network's x0 estimate is scored (MSE against x^n) under:

- ``real``: the true first frame and the flow from it to the true previous frame;
- ``shuffled_first``: the first frame of another clip (the flow kept);
- ``zero_flow``: the true first frame, the flow set to zero;

beside two baselines that use no network: ``copy_first`` (predict x^n = x^1) and
``copy_previous`` (predict x^n = x^{n-1}). A generator that uses its conditioning has
``real`` clearly below both controls; one that ignores the first frame has ``shuffled_first``
close to ``real``; one that ignores the motion cue has ``zero_flow`` close to ``real``.

The x0 estimate is ``(x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)``, clipped to [-1, 1]
as the sampler does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffrepro.core.schedules import Schedule
from diffrepro.vidm.flow import FlowSource

CONTROLS = ("real", "shuffled_first", "zero_flow")
BASELINES = ("copy_first", "copy_previous")


def shuffled(first: Tensor) -> Tensor:
    """Each clip gets the next clip's first frame (a derangement for two or more clips)."""
    if first.shape[0] < 2:
        raise ValueError("the shuffled-first-frame control needs at least two clips")
    return first.roll(1, dims=0)


@torch.no_grad()
def conditioning_probe(
    motion: torch.nn.Module,
    frames: Tensor,
    schedule: Schedule,
    flow_source: FlowSource,
    *,
    t: int = 600,
    seed: int = 0,
) -> dict[str, float]:
    """Mean x0-MSE at step ``t`` over clips ``frames`` (B, F, 3, H, W) and frames n = 1..F-1,
    for the controls and baselines above (``flow_source`` estimates the flow first -> x^{n-1})."""
    if not 0 <= t < len(schedule):
        raise ValueError(f"probe step t must lie in [0, {len(schedule) - 1}], got {t}")
    batch, count = frames.shape[:2]
    abar = float(schedule.alphas_cumprod[t])
    generator = torch.Generator().manual_seed(seed)
    first = frames[:, 0]
    totals = dict.fromkeys(CONTROLS + BASELINES, 0.0)
    for n in range(1, count):
        target, previous = frames[:, n], frames[:, n - 1]
        noise = torch.randn(target.shape, generator=generator).to(target)
        x_t = abar**0.5 * target + (1 - abar) ** 0.5 * noise
        flow = flow_source(first, previous)
        inputs = {
            "real": (first, flow),
            "shuffled_first": (shuffled(first), flow),
            "zero_flow": (first, torch.zeros_like(flow)),
        }
        steps = torch.full((batch,), t, device=frames.device)
        index = torch.full((batch,), n, device=frames.device)
        for name, (cond_first, cond_flow) in inputs.items():
            eps = motion(x_t, steps, index, cond_first, cond_flow)[:, : target.shape[1]]
            x0 = ((x_t - (1 - abar) ** 0.5 * eps) / abar**0.5).clamp(-1, 1)
            totals[name] += _mse(x0, target)
        totals["copy_first"] += _mse(first, target)
        totals["copy_previous"] += _mse(previous, target)
    return {name: value / (count - 1) for name, value in totals.items()}


def _mse(a: Tensor, b: Tensor) -> float:
    return float(((a.float() - b.float()) ** 2).mean())
