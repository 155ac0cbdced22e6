"""EDICT: Exact Diffusion Inversion via Coupled Transformations (Wallace et al., CVPR 2023)."""

from .config import PRESETS, EDICTConfig
from .coupled import denoise_step, edict_denoise, edict_invert, invert_step, mix, unmix
from .pipeline import decode, denoise, edit, encode, invert, reconstruct

__all__ = [
    "PRESETS",
    "EDICTConfig",
    "decode",
    "denoise",
    "denoise_step",
    "edict_denoise",
    "edict_invert",
    "edit",
    "encode",
    "invert",
    "invert_step",
    "mix",
    "reconstruct",
    "unmix",
]
