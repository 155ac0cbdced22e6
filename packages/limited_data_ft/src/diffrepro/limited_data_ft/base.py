"""Base models: the zoo's emoji pixel DDPMs, local ADM / diffusers checkpoints, tiny random UNets.

``open_base(spec)`` takes

- a zoo name, ``emoji-ddpm`` or ``emoji-ddpm-cond`` (built on first use and cached);
- ``tiny-adm``, ``tiny-adm-cond``, ``tiny-unet2d``: seeded random 16 px UNets (tests, smoke runs);
- a folder in guided-diffusion's layout (``model.safetensors`` or ``model.pt`` beside
  ``model_flags.json``, optional ``diffusion_flags.json``: the zoo's own layout);
- a single ADM weights file (``.pt`` / ``.safetensors``) with ``model_flags`` = a JSON file
  of UNet flags or a core preset name (``imagenet256_uncond``, ``ffhq256``);
- a diffusers ``UNet2DModel`` folder (``config.json`` + weights), or a DDPM pipeline folder
  holding ``unet/`` and ``scheduler/scheduler_config.json``.

The schedule comes with the model (``diffusion_flags.json`` or the scheduler config); without
one it is DDPM's linear 1e-4 … 0.02 over 1000 steps. Only ε-prediction is supported; the
variance half of a ``learn_sigma`` model is ignored (the fine-tuning loss is L_simple).
A :class:`Base` carries a JSON reference (``ref``) with a SHA-256 of its weights, so a
fine-tuned file can name its base and check it is reopened unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffrepro.core.models.pretrained import config_from_dict as library_config
from diffrepro.core.models.pretrained import read_config
from diffrepro.core.models.stable_diffusion import SchedulerConfig
from diffrepro.core.models.unet import PRESETS as UNET_PRESETS
from diffrepro.core.models.unet import UNetConfig, UNetModel, load_guided_diffusion
from diffrepro.core.models.unet2d import UNet2DConfig, UNet2DModel
from diffrepro.core.schedules import Schedule

ZOO_BASES = ("emoji-ddpm", "emoji-ddpm-cond")
TINY_BASES = ("tiny-adm", "tiny-adm-cond", "tiny-unet2d")
TINY_ADM = UNetConfig(
    image_size=16,
    model_channels=16,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(8,),
    num_heads=2,
    resblock_updown=True,
    num_groups=4,
)
TINY_UNET2D = UNet2DConfig(
    sample_size=16,
    block_out_channels=(16, 32),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    layers_per_block=1,
    attention_head_dim=8,
    norm_num_groups=4,
)


@dataclass
class Base:
    """A pretrained ε-prediction UNet, its schedule and a JSON reference to reopen it."""

    unet: nn.Module
    schedule: Schedule
    ref: dict[str, Any]
    image_size: int
    num_classes: int | None = None

    @property
    def in_channels(self) -> int:
        return self.unet.config.in_channels


def open_base(spec: str, *, model_flags: str | None = None, device: str = "cpu") -> Base:
    """The base model named or located by ``spec`` (see the module docstring)."""
    if spec in ZOO_BASES:
        base = _zoo_base(spec, device)
    elif spec in TINY_BASES:
        base = tiny_base(spec)
    else:
        base = _path_base(Path(spec), model_flags)
    base.unet.to(device).eval().requires_grad_(False)
    return base


def reopen_base(ref: dict[str, Any], *, device: str = "cpu") -> Base:
    """The base a fine-tuned file names; an error if its weights changed since."""
    if not isinstance(ref, dict) or not isinstance(ref.get("spec"), str):
        raise ValueError("the fine-tuned file carries no base model reference")
    base = open_base(ref["spec"], model_flags=ref.get("model_flags"), device=device)
    if base.ref.get("sha256") != ref.get("sha256"):
        raise ValueError(
            f"the base model {ref['spec']} is not the one this file was fine-tuned from "
            "(its weights' SHA-256 differs)"
        )
    return base


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 over the state dict's names, dtypes, shapes and bytes (format independent)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _make(unet: nn.Module, schedule: Schedule, spec: str, image_size: int, **ref) -> Base:
    _check_channels(unet, spec)
    ref = {"spec": spec, **ref, "sha256": weights_sha256(unet)}
    classes = getattr(unet.config, "num_classes", None)
    return Base(unet.eval(), schedule, ref, image_size, classes)


def _check_channels(unet: nn.Module, spec: str) -> None:
    cfg = unet.config
    if cfg.out_channels != cfg.in_channels:
        raise ValueError(f"base {spec}: expected an ε-prediction UNet (out = in channels)")


def _zoo_base(name: str, device: str) -> Base:
    from diffrepro.core import zoo

    ddpm = zoo.load(name, device=device)
    return _make(ddpm.unet, ddpm.schedule, name, ddpm.unet.config.image_size)


def tiny_base(name: str, seed: int = 0) -> Base:
    """A seeded random tiny UNet with every weight non-zero (zero-initialised output layers
    get small random values, so every parameter receives gradient)."""
    if name not in TINY_BASES:
        raise ValueError(f"unknown tiny base {name!r} (choose one of {', '.join(TINY_BASES)})")
    torch.manual_seed(seed)
    if name == "tiny-unet2d":
        unet: nn.Module = UNet2DModel(TINY_UNET2D)
    else:
        classes = 3 if name == "tiny-adm-cond" else None
        unet = UNetModel(dataclasses.replace(TINY_ADM, num_classes=classes))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in unet.parameters():
            if not param.any():
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return _make(unet, Schedule.named("linear", 1000), name, 16)


def _path_base(path: Path, model_flags: str | None) -> Base:
    if not path.exists():
        raise FileNotFoundError(
            f"base model not found: {path} (a path, or one of {', '.join(ZOO_BASES)})"
        )
    spec = str(path.resolve())
    if path.is_file():
        if model_flags is None:
            raise ValueError(
                f"--base {path} is a weights file: give its UNet flags with --model-flags "
                f"(a JSON file or one of {', '.join(UNET_PRESETS)})"
            )
        flags_ref = model_flags if model_flags in UNET_PRESETS else str(Path(model_flags).resolve())
        return _adm(path, _unet_flags(model_flags), path.parent, spec, flags_ref)
    if (path / "model_flags.json").is_file():
        weights = _adm_weights(path)
        flags = _unet_flags(str(path / "model_flags.json"))
        return _adm(weights, flags, path, spec, None)
    if (path / "unet" / "config.json").is_file():
        return _diffusers(path / "unet", path / "scheduler", spec)
    if (path / "config.json").is_file():
        return _diffusers(path, path.parent / "scheduler", spec)
    raise ValueError(
        f"--base {path} is neither an ADM folder (model_flags.json) nor a diffusers UNet2DModel "
        "folder (config.json)"
    )


def _adm_weights(folder: Path) -> Path:
    for name in ("model.safetensors", "model.pt", "model.pth"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no model.safetensors or model.pt in {folder}")


def _unet_flags(model_flags: str) -> UNetConfig:
    if model_flags in UNET_PRESETS:
        return UNET_PRESETS[model_flags]
    path = Path(model_flags)
    if not path.is_file():
        raise FileNotFoundError(
            f"--model-flags {model_flags}: no such file (or preset: {', '.join(UNET_PRESETS)})"
        )
    data = _read_json(path)
    try:
        return UNetConfig(**data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path} does not hold valid ADM UNet flags: {err}") from None


def _adm(weights: Path, flags: UNetConfig, folder: Path, spec: str, model_flags) -> Base:
    if flags.num_classes is None and flags.cond_channels:
        raise ValueError(f"{weights}: UNets with conditioning channels are not supported")
    unet = load_guided_diffusion(weights, flags)
    schedule = Schedule.named("linear", 1000)
    diffusion = folder / "diffusion_flags.json"
    if diffusion.is_file():
        schedule = _adm_schedule(_read_json(diffusion), diffusion)
    return _make(unet, schedule, spec, flags.image_size, model_flags=model_flags)


def _adm_schedule(flags: dict, path: Path) -> Schedule:
    if flags.get("predict_xstart"):
        raise ValueError(f"{path}: x0-prediction models are not supported (ε only)")
    try:
        return Schedule.named(
            flags.get("noise_schedule", "linear"), flags.get("diffusion_steps", 1000)
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: bad diffusion flags ({err})") from None


def _diffusers(unet_dir: Path, scheduler_dir: Path, spec: str) -> Base:
    unet = UNet2DModel.from_pretrained(unet_dir)
    scheduler = SchedulerConfig()
    if (scheduler_dir / "scheduler_config.json").is_file():
        raw = read_config(scheduler_dir, "scheduler_config.json")
        scheduler = library_config(SchedulerConfig, raw, source=str(scheduler_dir))
    if scheduler.prediction_type != "epsilon":
        raise ValueError(
            f"{spec}: {scheduler.prediction_type} prediction is not supported (ε only)"
        )
    size = unet.config.sample_size
    if isinstance(size, tuple):
        if len(set(size)) != 1:
            raise ValueError(f"{spec}: only square sample sizes are supported, got {size}")
        size = size[0]
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"{unet_dir}/config.json sets no sample_size (the image size)")
    return _make(unet, scheduler.schedule(), spec, size)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return data
