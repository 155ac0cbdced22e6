"""Exact resume for ``sdm train``: the core training loop's checkpoint contract for a GAN.

The core loop (``diffrepro.core.train``) holds one model and one optimizer; SDM trains a
generator and a discriminator with two. The contract is the same: every ``checkpoint_every``
steps ``out_dir/checkpoints/step_<7 digits>/`` is written to a temporary folder and renamed, then
``checkpoints/latest`` names it. ``model.safetensors`` holds both networks (prefixes
``generator.`` / ``discriminator.``), ``ema.safetensors`` the generator's EMA, ``train_state.pt``
both Adam states, the step and the loss history; the config and seed go in the metadata. The
core's ``check_run_dir`` / ``latest_checkpoint`` read this layout, and since every random draw of
step ``s`` is seeded from ``(seed, s)``, a run killed and resumed ends with the same weights as an
uninterrupted one. Resuming with another config (other than ``train.steps``) or seed is refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from diffrepro.core.checkpoints import (
    atomic_write,
    load_checkpoint,
    load_state_dict,
    save_checkpoint,
    torch_load_weights_only,
)
from diffrepro.core.config import config_to_dict
from diffrepro.core.train import latest_checkpoint


@dataclasses.dataclass
class Resumed:
    step: int
    history: list[dict[str, float]]


def _meta(cfg: Any, seed: int, step: int) -> dict[str, Any]:
    return {"sdm": config_to_dict(cfg), "seed": seed, "step": step}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict as JSON reads it back, without ``train.steps`` (extending a run is fine)."""
    config = json.loads(json.dumps(config))
    train = {k: v for k, v in config.get("train", {}).items() if k != "steps"}
    return {**config, "train": train}


def save_state(
    out_dir: Path,
    step: int,
    networks: torch.nn.ModuleDict,
    ema_state: dict[str, torch.Tensor],
    optimizers: dict[str, torch.optim.Optimizer],
    history: list[dict[str, float]],
    cfg: Any,
    seed: int,
    keep: int = 2,
) -> Path:
    """Write ``checkpoints/step_<step>/`` atomically, point ``latest`` at it, keep ``keep``."""
    root = Path(out_dir) / "checkpoints"
    final, tmp = root / f"step_{step:07d}", root / f".step_{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    meta = _meta(cfg, seed, step)
    try:
        save_checkpoint(tmp / "model.safetensors", networks.state_dict(), meta)
        save_checkpoint(tmp / "ema.safetensors", ema_state, meta)
        state = {
            "optimizer": {name: opt.state_dict() for name, opt in optimizers.items()},
            "step": step,
            "losses": [h["g"] for h in history],
            "history": history,
        }
        torch.save(state, tmp / "train_state.pt")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write(root / "latest", lambda p: p.write_text(final.name))
    older = sorted(p for p in root.glob("step_*") if p.name < final.name)
    for old in older[: max(len(older) - (keep - 1), 0)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def restore_state(
    out_dir: Path,
    networks: torch.nn.ModuleDict,
    ema: Any,
    optimizers: dict[str, torch.optim.Optimizer],
    cfg: Any,
    seed: int,
) -> Resumed:
    """Load the latest checkpoint of ``out_dir`` into the models (step 0 when there is none)."""
    folder = latest_checkpoint(out_dir)
    if folder is None:
        return Resumed(0, [])
    weights, meta = load_checkpoint(folder / "model.safetensors")
    if not isinstance(meta.get("sdm"), dict):
        raise ValueError(f"cannot resume: {folder} was not written by `sdm train`")
    if _comparable(meta["sdm"]) != _comparable(config_to_dict(cfg)) or meta.get("seed") != seed:
        raise ValueError(
            f"cannot resume: {folder} was trained with another config or seed "
            f"(seed {meta.get('seed')}); use the same settings, or a new --out / --no-resume"
        )
    load_state_dict(networks, weights, source=str(folder / "model.safetensors"))
    ema.load_state_dict(load_checkpoint(folder / "ema.safetensors")[0])
    state = torch_load_weights_only(folder / "train_state.pt", "a training state (cannot resume)")
    if not isinstance(state, dict) or not isinstance(state.get("history"), list):
        raise ValueError(f"cannot resume: {folder / 'train_state.pt'} is not an sdm train state")
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizer"][name])
    return Resumed(int(state["step"]), [dict(h) for h in state["history"]])
