"""Discrete-time diffusion schedules, kept in float64 numpy (guided-diffusion style).

Beta schedules (all return float64 numpy arrays of length ``num_steps``):

- ``linear_betas(num_steps, beta_start=1e-4, beta_end=0.02, *, scale_with_steps=False)``:
  DDPM. ``scale_with_steps=True`` multiplies both ends by ``1000 / num_steps`` (ADM's "linear").
- ``cosine_betas(num_steps, s=0.008, max_beta=0.999)``: improved DDPM, betas clipped at max_beta.
- ``scaled_linear_betas(num_steps=1000, beta_start=0.00085, beta_end=0.012)``: Stable Diffusion,
  linear in sqrt(beta).
- ``quadratic_betas(num_steps=100, beta_start=1e-4, beta_end=0.1)``: TimeGrad / DiffMotion "quad"
  (also linear in sqrt(beta)); the defaults are DiffMotion's.
- ``named_betas(name, num_steps, **kwargs)``: "linear" (ADM scaling), "cosine", "scaled_linear",
  "quadratic".

The ``Schedule`` object (frozen dataclass; arrays are float64 numpy, read only)::

    sched = Schedule.from_betas(linear_betas(1000))      # or Schedule.named("cosine", 1000)
    sched = Schedule.from_alphas_cumprod(abar)           # e.g. buffers of a checkpoint
    sched.betas, sched.alphas, sched.alphas_cumprod, sched.alphas_cumprod_prev, sched.snr
    sched.timesteps            # int64: the ORIGINAL model timestep of each index (arange(T) if not
                               # respaced)
    sched.num_train_timesteps  # T of the schedule the model was trained on
    len(sched)                 # number of steps of this (maybe respaced) chain

Every tensor method takes ``t``: an index into THIS schedule (int or LongTensor of shape (B,));
coefficients are gathered in float64 and cast to ``x.dtype`` and ``x.device``, broadcast over the
non-batch dimensions. Float64 inputs stay float64.

- ``q_sample(x0, t, noise)``: ``sqrt(abar) x0 + sqrt(1 - abar) noise``.
- conversions between the three parameterisations, all exact inverses of each other:
  ``x0_from_eps(x_t, t, eps)``, ``eps_from_x0(x_t, t, x0)``, ``x0_from_v(x_t, t, v)``,
  ``eps_from_v(x_t, t, v)``, ``v_from_eps(x_t, t, eps)``, ``v_from_x0(x_t, t, x0)``, and the
  dispatcher ``convert(x_t, t, value, source, target)`` with source/target in {"eps", "x0", "v"};
  ``v_target(x0, eps, t)`` = ``sqrt(abar) eps - sqrt(1 - abar) x0`` (training target).
- ``posterior_mean_variance(x0, x_t, t) -> (mean, variance, log_variance)``: q(x_{t-1} | x_t, x0);
  the log variance is ADM's clipped one (index 0 uses index 1's value).
- ``model_variance(t, x, kind, var_values=None) -> (variance, log_variance)``, with ``kind``:
  "fixed_small" (posterior variance), "fixed_large" (betas, index 0 uses the posterior variance of
  index 1, as ADM), "learned_range" (ADM: ``var_values`` in [-1, 1] interpolates the log variance
  between the posterior variance (-1) and beta (+1)), "learned" (``var_values`` is the log
  variance).

Respacing (sampling a 1000-step model in fewer steps):

- ``space_timesteps(num_timesteps, section_counts)``: guided-diffusion's strings, e.g. "ddim50"
  (stride ``T // 50``: 0, 20, ..., 980), "50" or "10,10,10" (per-section evenly spaced, both ends
  of each section included), or a list of ints. Returns a sorted ascending list of kept timesteps.
- ``spaced_timesteps(num_train_timesteps, num_steps, spacing="leading", steps_offset=0)``:
  diffusers' ``set_timesteps`` grid (DESCENDING int64 array), spacing "leading" | "trailing" |
  "linspace".
  SD: ``spaced_timesteps(1000, 50, "leading", steps_offset=1)`` = 981, 961, ..., 1.
- ``strength_timesteps(grid, strength)``: the last ``int(len(grid) * strength)`` entries of a
  descending grid (img2img / EDICT editing strength).
- ``sched.respace(kept_timesteps)``: a new Schedule over the kept original timesteps (any order
  accepted, sorted ascending), with betas ``1 - abar[s_i] / abar[s_{i-1}]`` so its alpha-bars
  equal the original ones at the kept steps, and ``timesteps`` = the kept original timesteps (the
  samplers feed these to the model). Respacing a respaced schedule composes correctly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

PREDICTIONS = ("eps", "x0", "v")
VARIANCE_KINDS = ("fixed_small", "fixed_large", "learned_range", "learned")
SPACINGS = ("leading", "trailing", "linspace")


# ----------------------------------------------------------------------------- beta schedules


def _check_steps(num_steps: int) -> None:
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")


def linear_betas(
    num_steps: int,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    *,
    scale_with_steps: bool = False,
) -> np.ndarray:
    """DDPM's linear schedule; ``scale_with_steps`` rescales both ends by 1000/num_steps (ADM)."""
    _check_steps(num_steps)
    scale = 1000.0 / num_steps if scale_with_steps else 1.0
    return np.linspace(scale * beta_start, scale * beta_end, num_steps, dtype=np.float64)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Improved DDPM's cosine schedule: ``abar(t) = cos^2((t/T + s) / (1 + s) * pi/2)``."""
    _check_steps(num_steps)

    def alpha_bar(u: np.ndarray) -> np.ndarray:
        return np.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    u = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    betas = 1.0 - alpha_bar(u[1:]) / alpha_bar(u[:-1])
    return np.minimum(betas, max_beta)


def scaled_linear_betas(
    num_steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> np.ndarray:
    """Stable Diffusion's schedule: linear in sqrt(beta) from beta_start to beta_end."""
    _check_steps(num_steps)
    return np.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=np.float64) ** 2


def quadratic_betas(
    num_steps: int = 100, beta_start: float = 1e-4, beta_end: float = 0.1
) -> np.ndarray:
    """TimeGrad / DiffMotion "quad" schedule (linear in sqrt(beta)); defaults are DiffMotion's."""
    return scaled_linear_betas(num_steps, beta_start, beta_end)


def named_betas(name: str, num_steps: int, **kwargs: float) -> np.ndarray:
    """Betas by name: "linear" (ADM, scaled by 1000/T), "cosine", "scaled_linear", "quadratic"."""
    makers = {
        "linear": lambda: linear_betas(num_steps, scale_with_steps=True, **kwargs),
        "cosine": lambda: cosine_betas(num_steps, **kwargs),
        "scaled_linear": lambda: scaled_linear_betas(num_steps, **kwargs),
        "quadratic": lambda: quadratic_betas(num_steps, **kwargs),
    }
    if name not in makers:
        raise ValueError(f"unknown beta schedule {name!r}; expected one of {sorted(makers)}")
    return makers[name]()


# ----------------------------------------------------------------------------- timestep grids


def space_timesteps(num_timesteps: int, section_counts: str | Sequence[int]) -> list[int]:
    """guided-diffusion's respacing: which of ``num_timesteps`` steps to keep (ascending).

    ``"ddimN"`` keeps every ``T // N``-th step starting at 0 (it must give exactly N steps).
    Otherwise ``section_counts`` ("10,10,10" or [10, 10, 10]) splits the chain into equal sections
    (the first ones one longer when T does not divide) and keeps that many evenly spaced steps of
    each, both ends of a section included (positions rounded to nearest, as guided-diffusion).
    """
    if isinstance(section_counts, str):
        try:
            counts = [int(c) for c in section_counts.removeprefix("ddim").split(",")]
        except ValueError:
            raise ValueError(
                f"bad respacing {section_counts!r}: use e.g. 'ddim50', '50' or '10,10,10'"
            ) from None
        if section_counts.startswith("ddim"):
            return _ddim_stride(num_timesteps, counts[0])
        section_counts = counts
    size_per, extra = divmod(num_timesteps, len(section_counts))
    kept: list[int] = []
    start = 0
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if not 0 < count <= size:
            raise ValueError(f"cannot divide a section of {size} steps into {count}")
        stride = 1.0 if count == 1 else (size - 1) / (count - 1)
        position = 0.0  # accumulated like guided-diffusion so rounding matches it exactly
        for _ in range(count):
            kept.append(start + round(position))
            position += stride
        start += size
    return kept


def _ddim_stride(num_timesteps: int, desired: int) -> list[int]:
    for stride in range(1, num_timesteps):
        if len(range(0, num_timesteps, stride)) == desired:
            return list(range(0, num_timesteps, stride))
    raise ValueError(f"cannot create exactly {desired} steps with an integer stride")


def spaced_timesteps(
    num_train_timesteps: int,
    num_steps: int,
    spacing: str = "leading",
    steps_offset: int = 0,
) -> np.ndarray:
    """diffusers' ``set_timesteps`` grid, DESCENDING (the order sampling visits them).

    "leading": ``arange(N) * (T // N) + steps_offset``;
    "trailing": ``round(arange(T, 0, -T/N)) - 1``;
    "linspace": ``round(linspace(0, T - 1, N))``.
    steps_offset only applies to "leading", as in diffusers.
    """
    _check_steps(num_steps)
    if num_steps > num_train_timesteps:
        raise ValueError(f"num_steps={num_steps} exceeds num_train_timesteps={num_train_timesteps}")
    grid: np.ndarray
    if spacing == "leading":
        grid = np.arange(num_steps) * (num_train_timesteps // num_steps) + steps_offset
    elif spacing == "trailing":
        grid = np.round(np.arange(num_train_timesteps, 0, -num_train_timesteps / num_steps)) - 1
    elif spacing == "linspace":
        grid = np.linspace(0, num_train_timesteps - 1, num_steps).round()
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; expected one of {SPACINGS}")
    grid = np.sort(grid.astype(np.int64))[::-1].copy()
    if grid[0] >= num_train_timesteps or grid[-1] < 0:
        raise ValueError(f"grid {grid.tolist()} leaves [0, {num_train_timesteps})")
    return grid


def strength_timesteps(grid: Sequence[int] | np.ndarray, strength: float) -> np.ndarray:
    """The active tail of a DESCENDING grid for an editing strength ``s`` in (0, 1].

    Keeps the last ``int(len(grid) * s)`` entries, the bookkeeping of diffusers' img2img and of
    EDICT (``t_limit = S - int(S * s)``, ``grid[t_limit:]``): S = 50 at s = 0.8 keeps 40 steps
    (780, ..., 0 on the 980, ..., 0 grid). ``int`` truncates as those codes do (50 * 0.58 -> 28).
    """
    grid = np.asarray(grid, dtype=np.int64).reshape(-1)
    if not 0.0 < float(strength) <= 1.0:
        raise ValueError(f"strength must lie in (0, 1], got {strength!r}")
    active = int(len(grid) * float(strength))
    if active < 1:
        raise ValueError(
            f"strength {strength} keeps no step of a {len(grid)}-step grid (int(S * s) = 0)"
        )
    return grid[len(grid) - active :].copy()


# ----------------------------------------------------------------------------- the schedule


def gather(values: np.ndarray, t: int | Tensor, x: Tensor) -> Tensor:
    """``values[t]`` as a tensor of x's dtype/device, shaped (B, 1, ..., 1) to broadcast over x."""
    table = torch.tensor(values)
    index = torch.as_tensor(t, dtype=torch.long).cpu().reshape(-1)
    out = table[index].to(device=x.device, dtype=x.dtype)
    return out.reshape(-1, *([1] * (x.ndim - 1)))


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False, repr=False)
class Schedule:
    """A discrete diffusion schedule (see the module docstring for the full API)."""

    betas: np.ndarray
    timesteps: np.ndarray
    num_train_timesteps: int

    def __post_init__(self) -> None:
        betas = np.asarray(self.betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) == 0:
            raise ValueError("betas must be a non-empty 1-d array")
        if not np.all((betas > 0) & (betas <= 1)):
            raise ValueError("betas must lie in (0, 1]")
        timesteps = np.asarray(self.timesteps, dtype=np.int64)
        if timesteps.shape != betas.shape or np.any(np.diff(timesteps) <= 0):
            raise ValueError("timesteps must be strictly increasing, one per beta")
        object.__setattr__(self, "betas", _readonly(betas))
        timesteps = timesteps.copy()
        timesteps.setflags(write=False)
        object.__setattr__(self, "timesteps", timesteps)

    # -- construction

    @classmethod
    def from_betas(cls, betas: Sequence[float] | np.ndarray | Tensor) -> Schedule:
        """A schedule over ``len(betas)`` training steps (user-given betas allowed)."""
        betas = np.asarray(torch.as_tensor(betas).double().cpu().numpy())
        return cls(betas=betas, timesteps=np.arange(len(betas)), num_train_timesteps=len(betas))

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: Sequence[float] | np.ndarray | Tensor) -> Schedule:
        """A schedule whose alpha-bars are exactly ``alphas_cumprod`` (e.g. checkpoint buffers)."""
        abar = np.asarray(torch.as_tensor(alphas_cumprod).double().cpu().numpy())
        return cls.from_betas(1.0 - abar / np.append(1.0, abar[:-1]))

    @classmethod
    def named(cls, name: str, num_steps: int, **kwargs: float) -> Schedule:
        """``Schedule.from_betas(named_betas(name, num_steps, **kwargs))``."""
        return cls.from_betas(named_betas(name, num_steps, **kwargs))

    def respace(self, kept_timesteps: Sequence[int] | np.ndarray) -> Schedule:
        """The chain restricted to ``kept_timesteps`` (original model timesteps)."""
        kept = np.unique(np.asarray(kept_timesteps, dtype=np.int64))
        index = np.searchsorted(self.timesteps, kept)
        if len(kept) == 0 or np.any(index >= len(self)) or np.any(self.timesteps[index] != kept):
            raise ValueError(f"respace: timesteps {kept.tolist()} are not all in this schedule")
        abar = self.alphas_cumprod[index]
        betas = 1.0 - abar / np.append(1.0, abar[:-1])
        return Schedule(betas=betas, timesteps=kept, num_train_timesteps=self.num_train_timesteps)

    # -- arrays

    def __len__(self) -> int:
        return len(self.betas)

    def __repr__(self) -> str:
        t, abar = self.timesteps, self.alphas_cumprod
        return (
            f"Schedule({len(self)} steps over timesteps {t[0]}..{t[-1]} "
            f"of {self.num_train_timesteps}, abar {abar[0]:.4g}..{abar[-1]:.4g})"
        )

    @cached_property
    def alphas(self) -> np.ndarray:
        return _readonly(1.0 - self.betas)

    @cached_property
    def alphas_cumprod(self) -> np.ndarray:
        return _readonly(np.cumprod(self.alphas))

    @cached_property
    def alphas_cumprod_prev(self) -> np.ndarray:
        """alpha-bar of the previous index; 1.0 before index 0."""
        return _readonly(np.append(1.0, self.alphas_cumprod[:-1]))

    @cached_property
    def snr(self) -> np.ndarray:
        """Signal-to-noise ratio ``abar / (1 - abar)`` per index."""
        abar = self.alphas_cumprod
        return _readonly(abar / (1.0 - abar))

    @cached_property
    def posterior_variance(self) -> np.ndarray:
        """``beta_t (1 - abar_{t-1}) / (1 - abar_t)`` (0 at index 0)."""
        var = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        return _readonly(var)

    @cached_property
    def posterior_log_variance_clipped(self) -> np.ndarray:
        """log of the posterior variance, index 0 using index 1's value (ADM); finite everywhere."""
        var = self.posterior_variance
        first = var[1] if len(var) > 1 else self.betas[0]
        return _readonly(np.log(np.append(first, var[1:])))

    @cached_property
    def _posterior_mean_coefs(self) -> tuple[np.ndarray, np.ndarray]:
        abar, abar_prev = self.alphas_cumprod, self.alphas_cumprod_prev
        coef_x0 = self.betas * np.sqrt(abar_prev) / (1.0 - abar)
        coef_xt = (1.0 - abar_prev) * np.sqrt(self.alphas) / (1.0 - abar)
        return coef_x0, coef_xt

    # -- forward process and conversions

    def q_sample(self, x0: Tensor, t: int | Tensor, noise: Tensor) -> Tensor:
        abar = self.alphas_cumprod
        return gather(np.sqrt(abar), t, x0) * x0 + gather(np.sqrt(1.0 - abar), t, x0) * noise

    def _coefs(self, t: int | Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        abar = self.alphas_cumprod
        return gather(np.sqrt(abar), t, x), gather(np.sqrt(1.0 - abar), t, x)

    def x0_from_eps(self, x_t: Tensor, t: int | Tensor, eps: Tensor) -> Tensor:
        a, s = self._coefs(t, x_t)
        return (x_t - s * eps) / a

    def eps_from_x0(self, x_t: Tensor, t: int | Tensor, x0: Tensor) -> Tensor:
        a, s = self._coefs(t, x_t)
        return (x_t - a * x0) / s

    def x0_from_v(self, x_t: Tensor, t: int | Tensor, v: Tensor) -> Tensor:
        a, s = self._coefs(t, x_t)
        return a * x_t - s * v

    def eps_from_v(self, x_t: Tensor, t: int | Tensor, v: Tensor) -> Tensor:
        a, s = self._coefs(t, x_t)
        return s * x_t + a * v

    def v_from_eps(self, x_t: Tensor, t: int | Tensor, eps: Tensor) -> Tensor:
        a, s = self._coefs(t, x_t)
        return (eps - s * x_t) / a

    def v_from_x0(self, x_t: Tensor, t: int | Tensor, x0: Tensor) -> Tensor:
        a, s = self._coefs(t, x_t)
        return (a * x_t - x0) / s

    def v_target(self, x0: Tensor, eps: Tensor, t: int | Tensor) -> Tensor:
        a, s = self._coefs(t, x0)
        return a * eps - s * x0

    def convert(
        self, x_t: Tensor, t: int | Tensor, value: Tensor, source: str, target: str
    ) -> Tensor:
        """Convert a prediction between "eps", "x0" and "v" (identity when source == target)."""
        for name in (source, target):
            if name not in PREDICTIONS:
                raise ValueError(f"unknown prediction type {name!r}; expected one of {PREDICTIONS}")
        if source == target:
            return value
        return getattr(self, f"{target}_from_{source}")(x_t, t, value)

    # -- reverse process

    def posterior_mean_variance(
        self, x0: Tensor, x_t: Tensor, t: int | Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, variance and clipped log variance of q(x_{t-1} | x_t, x0)."""
        coef_x0, coef_xt = self._posterior_mean_coefs
        mean = gather(coef_x0, t, x_t) * x0 + gather(coef_xt, t, x_t) * x_t
        variance = gather(self.posterior_variance, t, x_t).expand_as(x_t)
        log_variance = gather(self.posterior_log_variance_clipped, t, x_t).expand_as(x_t)
        return mean, variance, log_variance

    def model_variance(
        self,
        t: int | Tensor,
        x: Tensor,
        kind: str = "fixed_small",
        var_values: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The reverse-step variance and log variance of ``kind`` (see module docstring)."""
        if kind == "fixed_small":
            log_var = gather(self.posterior_log_variance_clipped, t, x).expand_as(x)
            return gather(self.posterior_variance, t, x).expand_as(x), log_var
        if kind == "fixed_large":
            first = self.posterior_variance[1] if len(self) > 1 else self.betas[0]
            var = np.append(first, self.betas[1:])
            return gather(var, t, x).expand_as(x), gather(np.log(var), t, x).expand_as(x)
        if kind not in ("learned_range", "learned"):
            raise ValueError(f"unknown variance kind {kind!r}; expected one of {VARIANCE_KINDS}")
        if var_values is None:
            raise ValueError(f"variance kind {kind!r} needs the model's variance channels")
        if kind == "learned":
            return torch.exp(var_values), var_values
        min_log = gather(self.posterior_log_variance_clipped, t, x)
        max_log = gather(np.log(self.betas), t, x)
        frac = (var_values + 1) / 2
        log_var = frac * max_log + (1 - frac) * min_log
        return torch.exp(log_var), log_var
