"""Cross-attention guidance (spec §3.5): a reference pass that stores every cross-attention map,
and an edit pass that takes one gradient step on the latent per timestep to match them.

Both passes are DDIM runs of :func:`diffrepro.core.samplers.sample_ddim` with classifier-free
guidance on the batch ``[negative, conditional]``; the maps come from the core attention hooks
(:func:`diffrepro.core.nn.transformer.attention_hooks`, :class:`AttentionStore`). The xa loss is
diffusers' / the official one: for every cross-attention layer, the squared difference to the
reference summed over (queries, tokens) and averaged over (batch, heads), summed over layers.

Which latent carries the step (``carry``):

- ``"negative"`` (official code and diffusers): the UNet sees ``X = [x, x]`` with contexts
  ``[negative, caption + Δc]``; ``X ← X − λ_xa ∇_X L`` (both halves, each against its own
  reference); ε_u and ε_c are evaluated at their own updated halves, and the latent carried into
  the DDIM step is the negative half.
- ``"paper"`` (Algorithm 1 read literally): the gradient of the edited branch's maps (context
  ``caption + Δc``, against the conditional reference maps) updates ``x``, and both CFG halves
  are evaluated at the updated ``x``.

Every UNet call of both passes runs the explicit-softmax attention, so with Δc = 0 the edit pass
repeats the reference pass bit for bit (zero xa loss, zero gradient).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.nn.transformer import AttentionStore, attention_hooks
from diffrepro.core.samplers import (
    StepState,
    ddim_mean_variance,
    sample_ddim,
    x0_eps_from_prediction,
)

CARRY_MODES = ("negative", "paper")
Maps = dict[str, list[Tensor]]


@dataclass(frozen=True)
class GuidanceConfig:
    """Editing: DDIM steps, CFG scale, λ_xa and which latent carries the guidance step."""

    num_steps: int = 50
    guidance_scale: float = 5.0
    xa_guidance: float = 0.1
    carry: str = "negative"

    def __post_init__(self) -> None:
        if self.carry not in CARRY_MODES:
            raise ValueError(f"edit carry must be one of {CARRY_MODES}, got {self.carry!r}")
        if self.num_steps < 1:
            raise ValueError(f"edit num_steps must be >= 1, got {self.num_steps}")
        if self.xa_guidance < 0:
            raise ValueError(f"edit xa_guidance must be >= 0, got {self.xa_guidance}")


class CrossAttentionLoss:
    """A hook summing, over cross-attention layers, ``mean_{B,heads} Σ_{HW,L} (M − M_ref)²``."""

    def __init__(self, reference: dict[str, Tensor]) -> None:
        self.reference = reference
        self.loss: Tensor | None = None

    def __call__(self, name: str, is_cross: bool, probs: Tensor) -> None:
        if not is_cross:
            return None
        if name not in self.reference:
            raise ValueError(f"no reference map for cross-attention layer {name}")
        ref = self.reference[name].to(probs)
        if ref.shape != probs.shape:
            raise ValueError(f"{name}: map {tuple(probs.shape)} vs reference {tuple(ref.shape)}")
        term = ((probs - ref) ** 2).sum((-2, -1)).mean()
        self.loss = term if self.loss is None else self.loss + term
        return None


def _no_change(name: str, is_cross: bool, probs: Tensor) -> None:
    return None


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Weights need no gradients: only the latent is optimised."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def cross_attention_loss(
    unet: nn.Module, x: Tensor, t: Tensor, context: Tensor, reference: dict[str, Tensor]
) -> Tensor:
    """The differentiable xa loss of ``unet(x, t, context)`` against ``reference`` maps."""
    hook = CrossAttentionLoss(reference)
    with attention_hooks(unet, hook):
        unet(x, t, context)
    if hook.loss is None:
        raise ValueError("the UNet has no cross-attention layers to guide")
    return hook.loss


def guided_output(
    unet: nn.Module, x: Tensor, t: Tensor, context: Tensor, scale: float, hook=_no_change
) -> Tensor:
    """CFG on the batch ``[negative, conditional]`` of ``x`` (its two halves), or the plain
    conditional output when ``scale == 1`` (``x`` then holds one branch). The UNet runs with
    ``hook`` on its attention layers (explicit softmax everywhere)."""
    with attention_hooks(unet, hook):
        out = unet(x, t, context)
    if scale == 1.0:
        return out
    out_u, out_c = out.chunk(2)
    return out_u + scale * (out_c - out_u)


def contexts(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """The UNet context of a guided batch: ``[uncond, cond]`` (``cond`` alone at scale 1)."""
    return cond if scale == 1.0 else torch.cat([uncond, cond])


def _doubled(x: Tensor, scale: float) -> Tensor:
    return x if scale == 1.0 else torch.cat([x, x])


def _ddim_kwargs(sd: StableDiffusion, num_steps: int) -> dict:
    clip = sd.scheduler.clip_sample_range if sd.scheduler.clip_sample else None
    return {
        "timesteps": sd.scheduler.grid(num_steps),
        "final_alpha_cumprod": sd.scheduler.final_alpha_cumprod(sd.schedule),
        "prediction": sd.scheduler.prediction,
        "clip_x0": clip,
    }


def reference_pass(
    sd: StableDiffusion,
    x_t: Tensor,
    cond: Tensor,
    uncond: Tensor,
    cfg: GuidanceConfig,
    *,
    progress: bool = False,
) -> tuple[Tensor, Maps]:
    """Denoise ``x_t`` with the caption; returns the latents and the maps of every step."""
    ctx = contexts(cond, uncond, cfg.guidance_scale)
    store = AttentionStore(cross_only=True)

    def model(x: Tensor, t: Tensor) -> Tensor:
        scale = cfg.guidance_scale
        return guided_output(sd.unet, _doubled(x, scale), _doubled(t, scale), ctx, scale, store)

    kwargs = _ddim_kwargs(sd, cfg.num_steps)
    latents = sample_ddim(model, x_t, sd.schedule, progress=progress, **kwargs)
    return latents, dict(store.maps)


class _GuidedModel:
    """The edit pass's ``model(x, t)``: xa-guidance step, then CFG at the moved latent."""

    def __init__(self, sd, ctx, cond_edit, maps: Maps, cfg: GuidanceConfig, batch: int) -> None:
        self.sd, self.ctx, self.cond_edit, self.maps, self.cfg = sd, ctx, cond_edit, maps, cfg
        self.batch = batch
        self.step = 0
        self.carried: Tensor | None = None
        self.losses: list[float] = []

    def _reference(self, half: slice) -> dict[str, Tensor]:
        return {name: steps[self.step][half] for name, steps in self.maps.items()}

    def _guidance_step(self, x: Tensor, t: Tensor) -> Tensor:
        scale, lr = self.cfg.guidance_scale, self.cfg.xa_guidance
        if self.cfg.carry == "paper" and scale != 1.0:
            X, tt, ctx = x, t, self.cond_edit
            reference = self._reference(slice(self.batch, None))
        else:
            X, tt, ctx = _doubled(x, scale), _doubled(t, scale), self.ctx
            reference = self._reference(slice(None))
        X = X.detach().requires_grad_(True)
        with torch.enable_grad(), _frozen(self.sd.unet):
            loss = cross_attention_loss(self.sd.unet, X, tt, ctx, reference)
            (grad,) = torch.autograd.grad(loss, X)
        if not torch.isfinite(loss):
            raise ValueError(f"the cross-attention loss is not finite at step {self.step}")
        self.losses.append(float(loss))
        return (X - lr * grad).detach()

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        scale = self.cfg.guidance_scale
        if self.cfg.xa_guidance > 0:
            moved = self._guidance_step(x, t)
        else:
            moved = _doubled(x, scale) if self.cfg.carry == "negative" else x
        if moved.shape[0] == x.shape[0]:  # paper mode (or no CFG): one latent for both halves
            self.carried, batch_in = moved, _doubled(moved, scale)
        else:
            self.carried, batch_in = moved[: self.batch], moved
        self.step += 1
        return guided_output(self.sd.unet, batch_in, _doubled(t, scale), self.ctx, scale)


def _restep(model: _GuidedModel, prediction: str, clip_x0: float | None):
    """A sampler callback redoing the DDIM step from the carried (guided) latent."""

    def callback(state: StepState) -> StepState:
        x = model.carried
        level = torch.tensor(state.alpha_bar, dtype=torch.float64)
        x0, eps = x0_eps_from_prediction(state.model_output, x, level, prediction)
        x0, eps = x0.to(x.dtype), eps.to(x.dtype)
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
        mean, _ = ddim_mean_variance(x0, eps, state.alpha_bar, state.alpha_bar_prev, 0.0)
        return dataclasses.replace(state, x=x, x0=x0, eps=eps, mean=mean)

    return callback


def edit_pass(
    sd: StableDiffusion,
    x_t: Tensor,
    cond_edit: Tensor,
    uncond: Tensor,
    maps: Maps,
    cfg: GuidanceConfig,
    *,
    progress: bool = False,
) -> tuple[Tensor, list[float]]:
    """Denoise ``x_t`` with the edited caption and cross-attention guidance towards ``maps``;
    returns the edited latents and the xa loss of every step (empty when λ_xa = 0)."""
    model = _GuidedModel(
        sd, contexts(cond_edit, uncond, cfg.guidance_scale), cond_edit, maps, cfg, x_t.shape[0]
    )
    kwargs = _ddim_kwargs(sd, cfg.num_steps)
    latents = sample_ddim(
        model, x_t, sd.schedule, progress=progress,
        callback=_restep(model, kwargs["prediction"], kwargs["clip_x0"]), **kwargs,
    )  # fmt: skip
    return latents, model.losses
