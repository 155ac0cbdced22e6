"""The backbone: the core pixel UNet (ADM), its schedule, and loading weights.

A checkpoint is either our own ``.safetensors`` (written by ``adir train``; its config travels
in the metadata) or an official openai/guided-diffusion ``.pt`` state dict such as
``256x256_diffusion_uncond.pt`` (the paper's ImageNet 256 unconditional model, preset ``paper``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from diffrepro.core.checkpoints import load_checkpoint, load_state_dict
from diffrepro.core.models.unet import UNetModel, load_guided_diffusion
from diffrepro.core.schedules import Schedule, space_timesteps
from diffrepro.core.train import latest_checkpoint, model_config_from_checkpoint

from .config import ADIRConfig


def build_model(cfg: ADIRConfig) -> UNetModel:
    return UNetModel(cfg.unet)


def load_model(path: str | os.PathLike, cfg: ADIRConfig) -> tuple[UNetModel, ADIRConfig]:
    """Weights from a file or an ``adir train`` run folder (its latest EMA weights).

    Our checkpoints also bring their UNet config, returned in the updated ``cfg``.
    """
    path = Path(path)
    if path.is_dir():
        path = _latest_weights(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix.lower() == ".safetensors":
        state, saved = load_checkpoint(path)
        if saved:  # our own checkpoint: its UNet config travels with it
            cfg = replace(cfg, unet=model_config_from_checkpoint(ADIRConfig, saved, path).unet)
        model = UNetModel(cfg.unet)
        load_state_dict(model, state, source=str(path))
        return model.eval(), cfg
    return load_guided_diffusion(path, cfg.unet).eval(), cfg


def _latest_weights(run_dir: Path) -> Path:
    folder = latest_checkpoint(run_dir)
    if folder is None:
        raise FileNotFoundError(
            f"no training checkpoint in {run_dir} (expected checkpoints/latest)"
        )
    ema = folder / "ema.safetensors"
    return ema if ema.is_file() else folder / "model.safetensors"


def train_schedule(cfg: ADIRConfig) -> Schedule:
    return Schedule.named(cfg.schedule, cfg.diffusion_steps)


def sampling_schedule(cfg: ADIRConfig) -> Schedule:
    """The training schedule respaced to ``cfg.sample_steps`` (guided-diffusion's strings)."""
    full = train_schedule(cfg)
    return full.respace(space_timesteps(cfg.diffusion_steps, cfg.sample_steps))
