"""Opening tokenizer and transformer weights: ours (safetensors + config JSON), the official
Flax msgpack files (no extension), and the PyTorch ports (``.ckpt`` / ``.bin`` / ``.pt``)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from diffrepro.core.checkpoints import (
    PICKLE_SUFFIXES,
    load_checkpoint,
    load_state_dict,
    read_state_dict,
    save_checkpoint,
)
from diffrepro.core.config import config_from_dict
from diffrepro.maskgit import port
from diffrepro.maskgit.flax_msgpack import flatten, params_of, read_flax
from diffrepro.maskgit.transformer import MaskGitTransformer, TransformerConfig
from diffrepro.maskgit.vqgan import VQGAN, VQGANConfig

KINDS = {"tokenizer": (VQGAN, VQGANConfig), "transformer": (MaskGitTransformer, TransformerConfig)}


def save_model(path: str | os.PathLike, model, kind: str, extra: dict | None = None) -> Path:
    """Write ``model`` as safetensors with ``{"kind", "model": config, ...extra}`` metadata."""
    meta = {"kind": kind, "model": dataclasses.asdict(model.config), **(extra or {})}
    return save_checkpoint(path, model, meta)


def _ours(path: Path, kind: str):
    state, meta = load_checkpoint(path)
    if meta.get("kind") != kind:
        found = meta.get("kind") or "no MaskGIT kind"
        raise ValueError(f"{path} holds {found}, not a MaskGIT {kind}")
    cls, cfg_cls = KINDS[kind]
    model = cls(config_from_dict(cfg_cls, meta["model"]))
    load_state_dict(model, state, source=str(path))
    return model, meta


def load_tokenizer(path: str | os.PathLike, config: VQGANConfig | None = None) -> VQGAN:
    """A tokenizer from any supported file (``config`` is needed only for PyTorch ports;
    Flax shapes give it, and ours store it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _ours(path, "tokenizer")[0]
    if path.suffix in PICKLE_SUFFIXES:
        cfg = config or VQGANConfig()
        state = port.torch_tokenizer_state(read_state_dict(path), cfg)
    else:
        flat = flatten(params_of(read_flax(path)))
        cfg = config or port.infer_tokenizer_config(flat)
        state = port.flax_tokenizer_state(flat, cfg, str(path))
    model = VQGAN(cfg)
    load_state_dict(model, state, source=str(path))
    return model.eval()


def load_transformer(
    path: str | os.PathLike, config: TransformerConfig | None = None, codebook_size: int = 1024
) -> MaskGitTransformer:
    """A transformer from any supported file (Flax: the config is read off the shapes, with
    ``codebook_size`` K splitting the vocabulary)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"transformer checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _ours(path, "transformer")[0]
    if path.suffix in PICKLE_SUFFIXES:
        cfg = config or TransformerConfig()
        state = port.torch_transformer_state(read_state_dict(path))
    else:
        flat = flatten(params_of(read_flax(path)))
        cfg = config or port.infer_transformer_config(flat, codebook_size)
        state = port.flax_transformer_state(flat, cfg, str(path))
    model = MaskGitTransformer(cfg)
    load_state_dict(model, state, source=str(path))
    return model.eval()


def checkpoint_meta(path: str | os.PathLike) -> dict:
    return load_checkpoint(path)[1]
