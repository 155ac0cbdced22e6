"""Write a :class:`StableDiffusion` bundle as a diffusers pipeline folder (no diffusers needed).

The layout is the one ``StableDiffusionPipeline.save_pretrained`` writes and
:meth:`StableDiffusion.load` reads: ``model_index.json``; ``unet/`` and ``vae/`` with
``config.json`` + ``diffusion_pytorch_model.safetensors``; ``text_encoder/`` with a transformers
``config.json`` + ``model.safetensors`` (keys under ``text_model.``); ``tokenizer/`` with
``vocab.json``, ``merges.txt``, ``tokenizer_config.json`` and ``special_tokens_map.json``;
``scheduler/scheduler_config.json`` (a DDIMScheduler). Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from diffrepro.core.checkpoints import atomic_write
from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.tokenizer import BOS, EOS

DIFFUSERS_VERSION = "0.30.0"


def save_stable_diffusion(
    sd: StableDiffusion,
    folder: str | os.PathLike,
    *,
    vocab: dict[str, int],
    merges: list[tuple[str, str]],
) -> Path:
    """Write ``sd`` to ``folder``; ``vocab`` / ``merges`` are its tokenizer's BPE files."""
    folder = Path(folder)
    _write_json(folder / "model_index.json", _model_index())
    unet_config = {"_class_name": "UNet2DConditionModel", **config_dict(sd.unet.config)}
    write_component(folder / "unet", unet_config, sd.unet.state_dict(), "diffusion_pytorch_model")
    vae_config = {"_class_name": "AutoencoderKL", **config_dict(sd.vae.config)}
    write_component(folder / "vae", vae_config, sd.vae.state_dict(), "diffusion_pytorch_model")
    text = {f"text_model.{k}": v for k, v in sd.text_encoder.state_dict().items()}
    write_component(folder / "text_encoder", _text_config(sd, vocab), text, "model")
    _write_tokenizer(folder / "tokenizer", sd, vocab, merges)
    scheduler = {
        "_class_name": "DDIMScheduler",
        "_diffusers_version": DIFFUSERS_VERSION,
        **config_dict(sd.scheduler),
    }
    _write_json(folder / "scheduler" / "scheduler_config.json", scheduler)
    return folder


def _model_index() -> dict[str, Any]:
    return {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": DIFFUSERS_VERSION,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
    }


def _text_config(sd: StableDiffusion, vocab: dict[str, int]) -> dict[str, Any]:
    return {
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        **config_dict(sd.text_encoder.config),
        "bos_token_id": vocab[BOS],
        "eos_token_id": vocab[EOS],
        "pad_token_id": sd.tokenizer.pad_id,
        "torch_dtype": "float32",
    }


def _write_tokenizer(
    folder: Path, sd: StableDiffusion, vocab: dict[str, int], merges: list[tuple[str, str]]
) -> None:
    _write_json(folder / "vocab.json", vocab)
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    atomic_write(
        folder / "merges.txt", lambda p: p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    )
    pad = next(t for t, i in vocab.items() if i == sd.tokenizer.pad_id)
    specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad}
    _write_json(folder / "special_tokens_map.json", specials)
    _write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "CLIPTokenizer",
            "model_max_length": sd.tokenizer.max_length,
            "do_lower_case": True,
            **specials,
        },
    )


def write_component(
    folder: Path, config: dict[str, Any], state: dict[str, torch.Tensor], stem: str
) -> None:
    _write_json(folder / "config.json", config)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    path = folder / f"{stem}.safetensors"
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))


def config_dict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples become lists


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True)
    atomic_write(path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
