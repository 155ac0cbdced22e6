"""Stages A and B end to end, and the run folder ``imagic train`` writes and ``sample`` reads.

Run folder: ``embeddings.safetensors`` (``e_tgt`` and ``e_opt``, the prompt and settings as
metadata), ``unet/`` in diffusers layout (``config.json`` + ``diffusion_pytorch_model.safetensors``;
absent when stage B is switched off), ``config.json``, ``run.json`` (prompt, base model) and the
stages' training logs in ``stage_a/`` and ``stage_b/`` (TensorBoard, checkpoints).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from diffrepro.core.checkpoints import load_checkpoint, save_checkpoint
from diffrepro.core.config import config_to_dict, save_config
from diffrepro.core.models.sd_export import config_dict, write_component
from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.core.models.stable_diffusion import StableDiffusion

from .config import ImagicConfig
from .stages import finetune, image_latents, optimize_embedding, train_config

EMBEDDINGS = "embeddings.safetensors"
RUN = "run.json"


@dataclass
class Fitted:
    e_tgt: Tensor
    e_opt: Tensor
    losses_a: list[float]
    losses_b: list[float]


def fit(
    sd: StableDiffusion, image: Tensor, prompt: str, cfg: ImagicConfig, out: Path, seed: int
) -> Fitted:
    """Stages A and B (each may be switched off by ``cfg``) on one image; ``sd.unet`` is
    fine-tuned in place (keep a copy for baselines)."""
    with torch.no_grad():
        e_tgt = sd.encode_prompt(prompt).detach()
    latents = image_latents(sd, image, cfg.latents, seed)
    e_opt, losses_a = e_tgt.clone(), []
    if cfg.stage_a:
        config = train_config(cfg.embed_steps, cfg.embed_lr, cfg, seed)
        e_opt, result = optimize_embedding(sd, latents, e_tgt, config, out / "stage_a")
        losses_a = result.losses
    losses_b = []
    if cfg.stage_b:
        config = train_config(cfg.finetune_steps, cfg.finetune_lr, cfg, seed + 1)
        sd.unet.enable_gradient_checkpointing(cfg.gradient_checkpointing)
        losses_b = finetune(sd, latents, e_opt, config, out / "stage_b").losses
    return Fitted(e_tgt, e_opt, losses_a, losses_b)


def save_run(
    out: Path, sd: StableDiffusion, fitted: Fitted, prompt: str, cfg: ImagicConfig, source: str
) -> None:
    meta = {"prompt": prompt, "imagic": config_to_dict(cfg)}
    save_checkpoint(out / EMBEDDINGS, {"e_tgt": fitted.e_tgt, "e_opt": fitted.e_opt}, meta)
    if cfg.stage_b:
        unet_config = {"_class_name": "UNet2DConditionModel", **config_dict(sd.unet.config)}
        write_component(out / "unet", unet_config, sd.unet.state_dict(), "diffusion_pytorch_model")
    save_config(cfg, out / "config.json")
    run = {"prompt": prompt, "model": source, "stage_a": cfg.stage_a, "stage_b": cfg.stage_b}
    (out / RUN).write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")


@dataclass
class SavedRun:
    e_tgt: Tensor
    e_opt: Tensor
    prompt: str
    model: str
    unet: UNet2DConditionModel | None


def load_run(folder: Path) -> SavedRun:
    """What :func:`save_run` wrote (clear errors for a folder that is not an Imagic run)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"Imagic run folder not found: {folder}")
    for name in (EMBEDDINGS, RUN):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not an Imagic run: {name} is missing")
    state, meta = load_checkpoint(folder / EMBEDDINGS)
    if set(state) != {"e_tgt", "e_opt"} or state["e_tgt"].shape != state["e_opt"].shape:
        raise ValueError(f"{folder / EMBEDDINGS} must hold e_tgt and e_opt of one shape")
    try:
        run = json.loads((folder / RUN).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{folder / RUN} is not valid JSON: {err}") from None
    unet = UNet2DConditionModel.from_pretrained(folder / "unet") if run.get("stage_b") else None
    return SavedRun(state["e_tgt"], state["e_opt"], meta.get("prompt", ""), run["model"], unet)
