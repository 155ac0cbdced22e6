"""SINE settings (a frozen dataclass) and the presets ``paper``, ``demo`` and ``tiny``.

``paper`` follows the official LDM configs (spec §3.4): AdamW lr 1e-6 (torch's weight decay
0.01), batch 1, UNet and text encoder trained, 800 steps without patches / 10000 with patches
(``--patch`` switches), caption "photo of a sks {class}", editing with DDIM 100 steps (eta 0),
guidance 10, v = 0.6 on the fine-tuned model, window 500 <= t <= 1000 (inclusive). Patch
training: high-resolution side 1024 px (grid 128 latent pixels), crops of 10-100 % of each side
resized to 512 px, always cropping (``crop_prob`` 1.0, the LDM meaning of ``rec_prob``), the
(t/T)^2-weighted x0 term at weight 1.0. ``demo`` is the CPU run on the zoo's 32 px emoji model;
``tiny`` runs in seconds for tests.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from diffrepro.core.finetune import check_counts

from .guidance import RULES
from .pos_enc import MODES

DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class SineConfig:
    resolution: int = 512
    caption: str = "photo of a sks {}"
    train_text_encoder: bool = True
    steps: int = 800
    lr: float = 1e-6
    weight_decay: float = 0.01
    grad_clip: float | None = None  # LDM path: none; the diffusers port clips at 1.0
    patch: bool = False
    patch_steps: int = 10000
    high_resolution: int = 1024
    min_crop_frac: float = 0.1
    max_crop_frac: float = 1.0
    crop_prob: float = 1.0
    scale_recon_loss: float = 1.0  # used only with patches (the LDM patch config)
    interpolation: str = "bilinear"
    guidance_scale: float = 10.0
    v: float = 0.6
    k_min: int = 500
    k_max: int = 1000
    window_rule: str = "inclusive"
    num_steps: int = 100
    ddim_eta: float = 0.0
    num_samples: int = 1
    dtype: str = "float32"
    gradient_checkpointing: bool = False  # recompute UNet activations (SD 1.x on small GPUs)
    checkpoint_every: int = 800
    log_every: int = 10

    def __post_init__(self) -> None:
        check_counts(self, "resolution", "steps", "patch_steps", "high_resolution", "num_steps")
        check_counts(self, "num_samples", "checkpoint_every", "log_every")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}")
        if not 0 < self.min_crop_frac <= self.max_crop_frac <= 1:
            raise ValueError(
                "crop fractions must satisfy 0 < min_crop_frac <= max_crop_frac <= 1, got "
                f"{self.min_crop_frac} and {self.max_crop_frac}"
            )
        for name in ("crop_prob", "ddim_eta"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not (math.isfinite(self.scale_recon_loss) and self.scale_recon_loss >= 0):
            raise ValueError(f"scale_recon_loss must be non-negative, got {self.scale_recon_loss}")
        if not (math.isfinite(self.guidance_scale) and self.guidance_scale >= 1):
            raise ValueError(f"guidance_scale must be at least 1, got {self.guidance_scale}")
        if not math.isfinite(self.v):
            raise ValueError(f"v must be finite, got {self.v}")
        if "{}" not in self.caption:
            raise ValueError(f"caption must hold {{}} for the class word, got {self.caption!r}")
        if self.window_rule not in RULES:
            raise ValueError(f"window_rule must be one of {RULES}, got {self.window_rule!r}")
        if self.interpolation not in MODES:
            raise ValueError(f"interpolation must be one of {MODES}, got {self.interpolation!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.k_min > self.k_max:
            raise ValueError(f"k_min {self.k_min} is above k_max {self.k_max}")

    @property
    def train_steps(self) -> int:
        return self.patch_steps if self.patch else self.steps

    @property
    def recon_weight(self) -> float:
        return self.scale_recon_loss if self.patch else 0.0


PRESETS: dict[str, SineConfig] = {
    "paper": SineConfig(),
    "demo": SineConfig(
        resolution=32,
        caption="an emoji of a sks {}",
        steps=150,
        lr=1e-4,
        patch_steps=200,
        high_resolution=64,
        guidance_scale=4.0,
        num_steps=50,
        num_samples=3,
        checkpoint_every=1000,
    ),
    "tiny": SineConfig(
        resolution=32,
        steps=3,
        lr=1e-3,
        patch_steps=3,
        high_resolution=64,
        guidance_scale=3.0,
        num_steps=4,
        num_samples=2,
        checkpoint_every=2,
        log_every=1,
    ),
}


def with_patch(cfg: SineConfig, patch: bool) -> SineConfig:
    return dataclasses.replace(cfg, patch=True) if patch else cfg
