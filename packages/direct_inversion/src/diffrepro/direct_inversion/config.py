"""Direct Inversion settings (a frozen dataclass) and the presets ``paper``, ``demo`` and ``tiny``.

``paper`` is what the authors ran in ``main.ipynb`` (spec §3.5): 100 inversion and 100 editing
steps, guidance w = 3, λ = 0.5 blended over all steps (K = N), DDIM η = 0, empty inversion prompt,
512 px (SD 1.x's native size), and the VAE posterior *sampled* (seeded here; unseeded in the
official code).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

GRIDS = ("consistent", "official")
BLEND_TARGETS = ("eps", "latent")


@dataclass(frozen=True)
class DirectInversionConfig:
    """One edit: inversion on ``inv_steps``, guided DDIM on ``steps`` with the λ blend.

    - ``grid``: ``consistent`` (default) inverts on the editing grid itself, so λ = 1 replays the
      inversion exactly; ``official`` reproduces the coded grids (inversion levels 0, Δ, …, 1000-Δ
      with the UNet at the level it leaves and an identity last step; editing 1000-Δ+1, …, 1).
    - ``inject_steps`` = K, the number of first (highest-noise) editing steps that are blended;
      ``None`` means all ``steps`` (the notebook's K = N). 0 disables the blend.
    - ``blend_with``: ``eps`` blends with the stored inversion noise ε_inv[N-1-k] (the notebook's
      ``stochastic_injection_exp_method=True``); ``latent`` is the code's other branch, blending
      with the inverted latent z_T itself (kept only for comparison, spec §9.3).
    - ``direct_injection``: start the editing from the inverted latent (True) or from seeded
      Gaussian noise (False: plain text-to-image with the blend).
    - ``image_size``: the square the input is resized and cropped to; ``None`` = the model's
      native size (UNet sample size × VAE factor: 512 for SD 1.x, 32 for the zoo's emoji model).
    """

    steps: int = 100
    inv_steps: int = 100
    guidance: float = 3.0
    lam: float = 0.5
    inject_steps: int | None = None
    inversion_prompt: str = ""
    grid: str = "consistent"
    eta: float = 0.0
    blend_with: str = "eps"
    direct_injection: bool = True
    vae_sample: bool = True
    image_size: int | None = None

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {self.grid!r}")
        if self.blend_with not in BLEND_TARGETS:
            raise ValueError(f"blend_with must be one of {BLEND_TARGETS}, got {self.blend_with!r}")
        if self.steps < 1 or self.inv_steps < 1:
            raise ValueError(
                f"steps and inv_steps must be >= 1, got {self.steps} and {self.inv_steps}"
            )
        if self.steps != self.inv_steps:
            raise ValueError(
                f"steps ({self.steps}) must equal inv_steps ({self.inv_steps}): editing step k "
                "replays inversion step N-1-k (Direct Inversion needs steps == inv_steps)"
            )
        if self.grid == "official" and 1000 % self.steps:
            raise ValueError(f"the official grid needs steps dividing 1000, got {self.steps}")
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam must lie in [0, 1], got {self.lam}")
        if self.inject_steps is not None and not 0 <= self.inject_steps <= self.steps:
            raise ValueError(
                f"inject_steps must lie in [0, steps={self.steps}], got {self.inject_steps}"
            )
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        for name in ("guidance", "lam", "eta"):
            value = getattr(self, name)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"{name} must be finite, got {value}")

    @property
    def num_blended(self) -> int:
        """K: how many of the first editing steps are blended."""
        return self.steps if self.inject_steps is None else self.inject_steps


PRESETS: dict[str, DirectInversionConfig] = {
    "paper": DirectInversionConfig(),
    "demo": DirectInversionConfig(steps=50, inv_steps=50),
    "tiny": DirectInversionConfig(steps=5, inv_steps=5),
}


def with_values(cfg: DirectInversionConfig, **values) -> DirectInversionConfig:
    """``cfg`` with the given fields replaced; ``None`` values (flags not given) are skipped."""
    return dataclasses.replace(cfg, **{k: v for k, v in values.items() if v is not None})
