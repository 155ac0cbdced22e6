"""The fine-tuned file: only the trainable tensors, plus a reference to the base model.

``finetuned.safetensors`` holds the tensors of the variant's trainable set under their names in
:class:`~diffrepro.limited_data_ft.model.FineTuneModel` (``unet.<official key>`` for UNet
weights, ``adapters.<block>.<name>`` for adapter weights, stored as the adapter keeps them:
divided by its gain). Its metadata (core :func:`save_checkpoint`, written atomically) holds
``{"finetune": FTConfig, "rank": r, "base": {spec, model_flags, sha256}}``; loading reopens the
base, checks its SHA-256, rebuilds the adapters and requires exactly the trainable names.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from diffrepro.core.checkpoints import load_checkpoint, save_checkpoint
from diffrepro.core.config import config_from_saved

from .base import Base, reopen_base
from .config import FTConfig
from .model import FineTuneModel, trainable_names

FILE_NAME = "finetuned.safetensors"


def save_finetuned(path: str | os.PathLike, model: FineTuneModel, base_ref: dict) -> Path:
    """Write the trainable tensors of ``model`` and the metadata (atomic)."""
    params = dict(model.named_parameters())
    tensors = {name: params[name] for name in trainable_names(model)}
    meta = {
        "finetune": dataclasses.asdict(model.ft_config),
        "rank": model.rank,
        "base": base_ref,
    }
    return save_checkpoint(path, tensors, meta)


def load_finetuned(path: str | os.PathLike, *, device: str = "cpu") -> tuple[FineTuneModel, Base]:
    """The fine-tuned model (on ``device``, eval mode) and its reopened base."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fine-tuned file not found: {path}")
    state, meta = load_checkpoint(path)
    if "finetune" not in meta or "base" not in meta:
        raise ValueError(f"{path} is not a limited-data-ft file (no fine-tuning metadata)")
    cfg = config_from_saved(FTConfig, meta["finetune"], str(path))
    rank = meta.get("rank")
    if rank is not None and (not isinstance(rank, int) or rank < 1):
        raise ValueError(f"{path}: bad adapter rank {rank!r} in its metadata")
    base = reopen_base(meta["base"], device=device)
    model = FineTuneModel(base.unet, cfg, rank=rank).to(device)
    load_trainable(model, state, source=str(path))
    return model.eval(), base


def load_trainable(model: FineTuneModel, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Copy ``state`` into the trainable tensors; it must name exactly those, with their shapes."""
    expected = trainable_names(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    params = dict(model.named_parameters())
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(params[k].shape)}"
        for k in expected
        if k in state and state[k].shape != params[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{len(missing)} missing ({', '.join(missing[:5])})" if missing else "",
            f"{len(unexpected)} unexpected ({', '.join(unexpected[:5])})" if unexpected else "",
            f"shape mismatch ({', '.join(shapes[:5])})" if shapes else "",
        ]
        raise ValueError(f"{source} does not fit its base: " + "; ".join(p for p in parts if p))
    with torch.no_grad():
        for name in expected:
            params[name].copy_(state[name])
