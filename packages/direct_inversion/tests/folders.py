"""Write the tiny SD stack in the diffusers folder layout that ``StableDiffusion.load`` reads."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from safetensors.torch import save_file

from diffrepro.core.models.sd_tiny import TINY_WORDS
from diffrepro.core.tokenizer import write_vocab_files

INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "scheduler": ["diffusers", "DDIMScheduler"],
}


def _component(folder: Path, model, weights: str) -> None:
    folder.mkdir(parents=True)
    config = {"_class_name": "x", **dataclasses.asdict(model.config)}
    (folder / "config.json").write_text(json.dumps(config))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / weights))


def save_sd_folder(sd, folder: Path) -> Path:
    """``sd`` (a tiny stack made with TINY_WORDS) as a diffusers pipeline folder."""
    _component(folder / "unet", sd.unet, "diffusion_pytorch_model.safetensors")
    _component(folder / "vae", sd.vae, "diffusion_pytorch_model.safetensors")
    _component(folder / "text_encoder", sd.text_encoder, "model.safetensors")
    write_vocab_files(folder / "tokenizer", list(TINY_WORDS))
    (folder / "scheduler").mkdir()
    scheduler = {"_class_name": "DDIMScheduler", **dataclasses.asdict(sd.scheduler)}
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    (folder / "model_index.json").write_text(json.dumps(INDEX))
    return folder
