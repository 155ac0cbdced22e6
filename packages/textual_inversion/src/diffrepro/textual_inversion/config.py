"""Textual Inversion configs (a frozen dataclass) and the presets ``paper``, ``demo``, ``tiny``.

``paper`` follows the official LDM config (spec §3.5): base lr 5e-3 scaled by batch x grad-accum
x processes (on 2 GPUs x batch 4 that is the paper's 0.04), batch 4, 5000 steps (the paper's
count; the config file says 6100), AdamW with torch's default weight decay 0.01, the 81 object
templates, flips with p 0.5, one vector, checkpoints every 500 steps, DDIM 50 steps at
guidance 7.5 for samples. ``demo`` is the CPU-scale run on the zoo's 32 px emoji model, ``tiny``
runs in seconds for tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .formats import FORMATS
from .templates import OBJECT_SETS, PROPERTIES


@dataclass(frozen=True)
class TIConfig:
    num_vectors: int = 1
    learnable_property: str = "object"
    object_templates: str = "official"
    resolution: int = 512
    flip_p: float = 0.5
    latent_sample: bool = True
    steps: int = 5000
    batch_size: int = 4
    grad_accum: int = 1
    base_lr: float = 5e-3
    scale_lr: bool = True
    weight_decay: float = 0.01
    embedding_reg_weight: float = 0.0
    checkpoint_every: int = 500
    log_every: int = 10
    save_format: str = "safetensors"
    sample_steps: int = 50
    guidance_scale: float = 7.5
    num_samples: int = 4

    def __post_init__(self) -> None:
        if self.learnable_property not in PROPERTIES:
            raise ValueError(
                f"learnable_property must be one of {PROPERTIES}, got {self.learnable_property!r}"
            )
        if self.object_templates not in OBJECT_SETS:
            raise ValueError(
                f"object_templates must be one of {tuple(OBJECT_SETS)}, "
                f"got {self.object_templates!r}"
            )
        if self.save_format not in FORMATS:
            raise ValueError(f"save_format must be one of {FORMATS}, got {self.save_format!r}")
        for name in ("num_vectors", "resolution", "steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "log_every", "sample_steps", "num_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.flip_p <= 1.0:
            raise ValueError(f"flip_p must lie in [0, 1], got {self.flip_p}")
        if not self.base_lr > 0:
            raise ValueError(f"base_lr must be positive, got {self.base_lr}")
        if self.weight_decay < 0 or self.embedding_reg_weight < 0:
            raise ValueError("weight_decay and embedding_reg_weight must be non-negative")


PRESETS: dict[str, TIConfig] = {
    "paper": TIConfig(),
    "demo": TIConfig(
        resolution=32,
        steps=300,
        batch_size=4,
        base_lr=5e-3,
        checkpoint_every=100,
        sample_steps=25,
        guidance_scale=5.0,
        num_samples=8,
    ),
    "tiny": TIConfig(
        resolution=32,
        steps=3,
        batch_size=2,
        base_lr=5e-3,
        checkpoint_every=2,
        log_every=1,
        sample_steps=3,
        guidance_scale=3.0,
        num_samples=2,
    ),
}


def with_style(cfg: TIConfig, style: bool) -> TIConfig:
    """``cfg`` switched to the style templates when ``style`` is set."""
    return dataclasses.replace(cfg, learnable_property="style") if style else cfg
