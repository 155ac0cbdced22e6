"""pix2pix-zero configs (frozen dataclasses), the presets, the Table 1 methods and the Table 2
ablation rows as switches over one pipeline.

Presets: ``paper`` = the official code's defaults for real images (SD v1.4, 512², 50 DDIM steps
for inversion and editing, official grid, λ_ac = λ_kl = 20, 5 × 5 regulariser steps,
λ_xa = 0.1, CFG 5 with the caption as negative prompt); ``demo`` = the CPU-scale run on the zoo's
emoji model; ``tiny`` = seconds on a CPU (tests).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .guidance import GuidanceConfig
from .inversion import InversionConfig
from .regularizer import RegularizerConfig

DIRECTIONS = ("sentences", "word_swap")
NEGATIVES = ("caption", "empty")
STARTS = ("ddim", "ddpm")


@dataclass(frozen=True)
class Pix2PixZeroConfig:
    image_size: int = 512
    inversion: InversionConfig = field(default_factory=InversionConfig)
    edit: GuidanceConfig = field(default_factory=GuidanceConfig)
    direction: str = "sentences"  # sentence-bank direction, or the word swap of the baselines
    edit_multiplier: float = 1.0  # scales the direction (the authors' demo slider)
    negative: str = "caption"  # "caption" for real images, "empty" for synthetic ones
    start: str = "ddim"  # "ddim": (regularised) inversion; "ddpm": q(x_T | x_0) noise (row A)
    vae_sample: bool = True  # the official inversion samples the VAE posterior (seeded here)
    sentence_batch: int = 16
    sdedit_strength: float = 0.5  # the SDEdit baseline's noise level (fraction of the grid)

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("direction", self.direction, DIRECTIONS),
            ("negative", self.negative, NEGATIVES),
            ("start", self.start, STARTS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if not 0.0 < self.sdedit_strength <= 1.0:
            raise ValueError(f"sdedit_strength must lie in (0, 1], got {self.sdedit_strength}")
        if self.sentence_batch < 1:
            raise ValueError(f"sentence_batch must be >= 1, got {self.sentence_batch}")


PRESETS: dict[str, Pix2PixZeroConfig] = {
    "paper": Pix2PixZeroConfig(),
    "demo": Pix2PixZeroConfig(
        image_size=32,
        inversion=InversionConfig(num_steps=20),
        edit=GuidanceConfig(num_steps=20, xa_guidance=0.1),
    ),
    "tiny": Pix2PixZeroConfig(
        image_size=32,
        inversion=InversionConfig(num_steps=5, regularizer=RegularizerConfig(num_reg_steps=1)),
        edit=GuidanceConfig(num_steps=5),
        sentence_batch=4,
    ),
}

METHODS = ("pix2pix-zero", "ddim+word-swap", "sdedit+word-swap")
ABLATION_ROWS = {
    "A": "DDPM (stochastic) inversion + word swap",
    "B": "DDIM inversion + word swap",
    "C": "+ autocorrelation regularisation",
    "D": "+ sentence-bank direction",
    "E": "+ cross-attention guidance (= pix2pix-zero)",
}


def _switch(cfg: Pix2PixZeroConfig, *, start, regularize, direction, xa) -> Pix2PixZeroConfig:
    return dataclasses.replace(
        cfg,
        start=start,
        direction=direction,
        inversion=dataclasses.replace(cfg.inversion, regularize=regularize),
        edit=dataclasses.replace(cfg.edit, xa_guidance=cfg.edit.xa_guidance if xa else 0.0),
    )


def ablation_config(cfg: Pix2PixZeroConfig, row: str) -> Pix2PixZeroConfig:
    """The Table 2 row ``row`` (A–E) built from ``cfg`` (whose λ_xa row E keeps)."""
    switches = {
        "A": ("ddpm", False, "word_swap", False),
        "B": ("ddim", False, "word_swap", False),
        "C": ("ddim", True, "word_swap", False),
        "D": ("ddim", True, "sentences", False),
        "E": ("ddim", True, "sentences", True),
    }
    if row not in switches:
        raise ValueError(f"unknown ablation row {row!r}; expected one of {', '.join(switches)}")
    start, regularize, direction, xa = switches[row]
    return _switch(cfg, start=start, regularize=regularize, direction=direction, xa=xa)


def method_config(cfg: Pix2PixZeroConfig, method: str) -> Pix2PixZeroConfig:
    """Table 1: pix2pix-zero (row E) and DDIM + word swap (row B); SDEdit has its own path."""
    if method == "pix2pix-zero":
        return ablation_config(cfg, "E")
    if method == "ddim+word-swap":
        return ablation_config(cfg, "B")
    if method == "sdedit+word-swap":
        return dataclasses.replace(cfg, direction="word_swap")
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
