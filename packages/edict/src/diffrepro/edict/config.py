"""The EDICT config (a frozen dataclass) and the presets ``paper``, ``demo`` and ``tiny``.

``paper`` is the official editing setting (spec §3.5, §3.7): S = 50 DDIM steps on the 980, ..., 0
grid (no steps offset), strength 0.8 (40 active steps), guidance 3 in both directions, mixing
p = 0.93, leapfrog on, float64 end to end, x0 from a seeded sample of the VAE posterior.
``demo`` is the CPU-scale setting used by ``edict demo``; ``tiny`` runs in seconds (tests).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from .coupled import ORDER_KEYS

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16}
METHODS = ("edict", "ddim")
POSTERIORS = ("sample", "mean")
OUTPUTS = ("x", "y", "mean")


@dataclass(frozen=True)
class EDICTConfig:
    """Every knob of an EDICT inversion / edit (defaults: the official code)."""

    steps: int = 50  # S: DDIM steps of the full grid
    strength: float = 0.8  # s: the last int(S * s) grid steps are inverted and re-denoised
    guidance: float = 3.0  # G: classifier-free guidance, inversion and denoising alike
    p: float = 0.93  # mixing weight of the mixing layer, in (0, 1]
    leapfrog: bool = True  # alternate which sequence is updated first (official code)
    order_key: str = "mirrored"  # inversion order from the mirrored index ("loop": diffusers bug)
    method: str = "edict"  # "ddim": plain DDIM inversion + regeneration (the baseline)
    dtype: str = "float64"  # float64 (reference, exact) | float32 | float16
    steps_offset: int | None = 0  # grid offset (0: official 980..0); None: the model's config
    posterior: str = "sample"  # x0 from a seeded posterior "sample" (official) or its "mean"
    output: str = "x"  # which sequence is decoded: "x" (community), "y" or their "mean"
    null_prompt: str = ""  # the unconditional prompt of CFG
    resolution: int | None = None  # input images are cropped and resized to this (None: model's)

    def __post_init__(self) -> None:
        _require(int(self.steps) == self.steps and self.steps >= 1, f"steps >= 1, {self.steps!r}")
        _require(0.0 < self.strength <= 1.0, f"strength in (0, 1], got {self.strength!r}")
        _require(0.0 < self.p <= 1.0, f"p in (0, 1], got {self.p!r}")
        _require(math.isfinite(self.guidance), f"a finite guidance, got {self.guidance!r}")
        _require(int(self.steps * self.strength) >= 1, "int(steps * strength) >= 1")
        for name, allowed in (
            ("order_key", ORDER_KEYS),
            ("method", METHODS),
            ("dtype", tuple(DTYPES)),
            ("posterior", POSTERIORS),
            ("output", OUTPUTS),
        ):
            value = getattr(self, name)
            _require(value in allowed, f"{name} one of {', '.join(allowed)}, got {value!r}")
        _require(self.steps_offset is None or self.steps_offset >= 0, "steps_offset >= 0")
        _require(self.resolution is None or self.resolution >= 1, "resolution >= 1")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def active_steps(self) -> int:
        """Number of inverted / denoised steps: S - (S - int(S * s))."""
        return int(self.steps * self.strength)


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"EDICT config needs {what}")


PRESETS: dict[str, EDICTConfig] = {
    "paper": EDICTConfig(),
    "demo": EDICTConfig(),
    "tiny": EDICTConfig(steps=10),
}


def with_values(cfg: EDICTConfig, **values) -> EDICTConfig:
    """``cfg`` with the values that are not None replaced (explicit zeros are kept)."""
    return dataclasses.replace(cfg, **{k: v for k, v in values.items() if v is not None})
