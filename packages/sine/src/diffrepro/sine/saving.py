"""The fine-tuned folder ``sine train`` writes and ``sine edit`` reads.

``unet/`` (diffusers layout: ``config.json`` + ``diffusion_pytorch_model.safetensors``; a
patch-trained UNet has exactly the plain UNet's keys), ``text_encoder/`` (transformers layout,
keys under ``text_model.``; absent when the encoder was frozen), ``sine.json`` (identifier
caption, class word, base model, patch settings), ``config.json`` and the training logs
(``train/``). The VAE and tokenizer come from the base model named in ``sine.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from diffrepro.core.config import config_to_dict, save_config
from diffrepro.core.models.clip import CLIPTextModel
from diffrepro.core.models.sd_export import config_dict, write_component
from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.core.models.stable_diffusion import StableDiffusion

from .config import SineConfig
from .editing import FineTuned
from .patch_unet import PatchUNet, patch_unet_from

META = "sine.json"


def save_finetuned(
    out: Path, sd: StableDiffusion, caption: str, class_word: str, cfg: SineConfig, model: str
) -> None:
    unet_config = {"_class_name": "UNet2DConditionModel", **config_dict(sd.unet.config)}
    write_component(out / "unet", unet_config, sd.unet.state_dict(), "diffusion_pytorch_model")
    if cfg.train_text_encoder:
        text = {f"text_model.{k}": v for k, v in sd.text_encoder.state_dict().items()}
        text_config = {
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            **config_dict(sd.text_encoder.config),
            "bos_token_id": sd.tokenizer.bos_id,
            "eos_token_id": sd.tokenizer.eos_id,
            "pad_token_id": sd.tokenizer.pad_id,
        }
        write_component(out / "text_encoder", text_config, text, "model")
    patch = isinstance(sd.unet, PatchUNet)
    meta = {
        "caption": caption,
        "class_word": class_word,
        "model": model,
        "patch": patch,
        "init_size": sd.unet.init_size if patch else None,
        "interpolation": sd.unet.interpolation if patch else None,
        "text_encoder": cfg.train_text_encoder,
        "config": config_to_dict(cfg),
    }
    save_config(cfg, out / "config.json")
    (out / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_meta(folder: Path) -> dict:
    if not folder.is_dir():
        raise FileNotFoundError(f"fine-tuned folder not found: {folder}")
    path = folder / META
    if not path.is_file() or not (folder / "unet").is_dir():
        raise FileNotFoundError(f"{folder} is not a `sine train` folder ({META} or unet/ missing)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    missing = {"caption", "model", "patch"} - set(meta)
    if missing:
        raise ValueError(f"{path} lacks {', '.join(sorted(missing))}")
    return meta


def load_finetuned(folder: Path, base: StableDiffusion) -> FineTuned:
    """The fine-tuned bundle: its UNet (a patch UNet when trained so) and text encoder, with the
    base model's VAE, tokenizer and scheduler."""
    meta = read_meta(folder)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    if meta["patch"]:
        unet = patch_unet_from(unet, int(meta["init_size"]), meta.get("interpolation", "bilinear"))
    text = base.text_encoder
    if meta.get("text_encoder", True):
        text = CLIPTextModel.from_pretrained(folder / "text_encoder")
    else:
        text = copy.deepcopy(text)
    sd = StableDiffusion(unet, base.vae, text, base.tokenizer, base.scheduler)
    sd.unet.to(base.device, base.dtype).eval()
    sd.text_encoder.to(base.device, base.dtype).eval()
    return FineTuned(sd, meta["caption"])
