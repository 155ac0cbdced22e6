"""Imagic settings (a frozen dataclass) and the presets ``paper``, ``demo`` and ``tiny``.

``paper`` is the paper's Stable Diffusion setting as recalled in the spec (§3.5, unverified):
stage A Adam lr 2e-3 for 1000 steps, stage B lr 5e-7 for 1500 steps, eta 0.7, DDIM 50 steps at
guidance 7.5 (the diffusers community pipeline's sampling defaults), 512 px. The community
pipeline's values (stage A 500 @ 1e-3, stage B 1000 @ 2e-6, alpha 1.2) are one ``--set`` away.
``demo`` is the CPU run on the zoo's 32 px emoji model; ``tiny`` runs in seconds for tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from diffrepro.core.finetune import check_counts

LATENT_MODES = ("sample_once", "mean", "sample_each_step")
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class ImagicConfig:
    resolution: int = 512
    stage_a: bool = True  # False: ablation "stage B with e_tgt directly" (e_opt = e_tgt)
    stage_b: bool = True  # False: ablation "no model fine-tuning"
    embed_steps: int = 1000
    embed_lr: float = 2e-3
    finetune_steps: int = 1500
    finetune_lr: float = 5e-7
    latents: str = "sample_once"  # how the image's VAE latent enters the loss (spec pitfall 8)
    eta: float = 0.7  # weight on e_tgt in stage C (paper's eta; diffusers' "alpha")
    guidance_scale: float = 7.5
    num_steps: int = 50
    ddim_eta: float = 0.0
    num_samples: int = 1
    dtype: str = "float32"
    gradient_checkpointing: bool = False  # recompute UNet activations (SD 1.x on small GPUs)
    checkpoint_every: int = 500
    log_every: int = 10

    def __post_init__(self) -> None:
        check_counts(self, "resolution", "embed_steps", "finetune_steps", "num_steps")
        check_counts(self, "num_samples", "checkpoint_every", "log_every")
        for name in ("embed_lr", "finetune_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not math.isfinite(self.eta):
            raise ValueError(f"eta must be a finite number, got {self.eta}")
        if not (math.isfinite(self.guidance_scale) and self.guidance_scale >= 1.0):
            raise ValueError(f"guidance_scale must be at least 1, got {self.guidance_scale}")
        if not 0.0 <= self.ddim_eta <= 1.0:
            raise ValueError(f"ddim_eta must lie in [0, 1], got {self.ddim_eta}")
        if self.latents not in LATENT_MODES:
            raise ValueError(f"latents must be one of {LATENT_MODES}, got {self.latents!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")


PRESETS: dict[str, ImagicConfig] = {
    "paper": ImagicConfig(),
    "demo": ImagicConfig(
        resolution=32,
        embed_steps=150,
        embed_lr=2e-3,
        finetune_steps=150,
        finetune_lr=1e-4,
        guidance_scale=4.0,
        num_steps=25,
        num_samples=3,
        checkpoint_every=1000,
    ),
    "tiny": ImagicConfig(
        resolution=32,
        embed_steps=3,
        embed_lr=1e-2,
        finetune_steps=3,
        finetune_lr=1e-3,
        guidance_scale=3.0,
        num_steps=3,
        num_samples=2,
        checkpoint_every=2,
        log_every=1,
    ),
}
