"""A Stable Diffusion 1.x / 2.x bundle loaded from a local diffusers folder, without diffusers.

::

    sd = StableDiffusion.load("stable-diffusion-v1-5")           # model_index.json + subfolders
    ctx = sd.encode_prompt(["a photo of a cat"])                 # (B, 77, 768)
    z = sd.sample(["a photo of a cat"], num_steps=50, guidance_scale=7.5, generator=g)
    x = sd.decode_latents(z)                                     # images in [-1, 1] (unclamped)
    z0 = sd.encode_images(x)                                     # posterior mean * scaling_factor
    zT = sd.invert(z0, "a photo of a cat", num_steps=50)         # DDIM inversion

Sampling and inversion run through :mod:`diffrepro.core.samplers` on a schedule built exactly as
diffusers' ``DDIMScheduler.from_config(scheduler_config)`` builds it: betas and alpha-bars in
float32 (``scaled_linear`` / ``linear`` / ``squaredcos_cap_v2`` / ``trained_betas``), the
``leading`` / ``trailing`` / ``linspace`` grid with ``steps_offset``, the last step going to
alpha-bar 1 or ``alphas_cumprod[0]`` (``set_alpha_to_one``), ``clip_sample`` and
``prediction_type`` (epsilon, v_prediction for SD 2.x 768-px, sample). Like diffusers' DDIM, a
step goes to the next grid entry (the same as ``t - T // N`` for "leading" spacing, and for the
other spacings when N divides T). Any dtype works end to end (float64 for EDICT) as long as the
latents have the models' dtype; ``load(dtype=torch.float32)`` runs fp16 weights in fp32 on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffrepro.core.models.autoencoder_kl import AutoencoderKL
from diffrepro.core.models.clip import CLIPTextModel
from diffrepro.core.models.pretrained import config_from_dict, read_config
from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.core.samplers import (
    Callback,
    Generators,
    cfg_model,
    invert_ddim,
    per_sample_noise,
    sample_ddim,
)
from diffrepro.core.schedules import Schedule, cosine_betas, spaced_timesteps
from diffrepro.core.tokenizer import CLIPTokenizer

PREDICTION_TYPES = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
COMPONENTS = {
    "unet": ("UNet2DConditionModel",),
    "vae": ("AutoencoderKL",),
    "text_encoder": ("CLIPTextModel",),
    "tokenizer": ("CLIPTokenizer", "CLIPTokenizerFast"),
    "scheduler": None,  # any diffusers scheduler: only its config is used
}


@dataclass(frozen=True)
class SchedulerConfig:
    """The ``scheduler_config.json`` fields DDIM uses (defaults: diffusers' ``DDIMScheduler``)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    trained_betas: tuple[float, ...] | None = None
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    set_alpha_to_one: bool = True
    steps_offset: int = 0
    prediction_type: str = "epsilon"
    timestep_spacing: str = "leading"

    UNSUPPORTED = {"thresholding": False, "rescale_betas_zero_snr": False}

    def __post_init__(self) -> None:
        if self.beta_schedule not in BETA_SCHEDULES and self.trained_betas is None:
            raise ValueError(f"beta_schedule {self.beta_schedule!r} is not one of {BETA_SCHEDULES}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type {self.prediction_type!r} is not one of {tuple(PREDICTION_TYPES)}"
            )

    @property
    def prediction(self) -> str:
        """The samplers' name for the prediction type ("eps", "v" or "x0")."""
        return PREDICTION_TYPES[self.prediction_type]

    def alphas_cumprod(self) -> np.ndarray:
        """Alpha-bars computed as diffusers does (float32 betas, float32 cumprod)."""
        t = self.num_train_timesteps
        if self.trained_betas is not None:
            betas = torch.tensor(self.trained_betas, dtype=torch.float32)
        elif self.beta_schedule == "linear":
            betas = torch.linspace(self.beta_start, self.beta_end, t, dtype=torch.float32)
        elif self.beta_schedule == "scaled_linear":
            betas = (
                torch.linspace(self.beta_start**0.5, self.beta_end**0.5, t, dtype=torch.float32)
                ** 2
            )
        else:
            betas = torch.tensor(cosine_betas(t), dtype=torch.float32)
        return torch.cumprod(1.0 - betas, dim=0).double().numpy()

    def schedule(self) -> Schedule:
        return Schedule.from_alphas_cumprod(self.alphas_cumprod())

    def final_alpha_cumprod(self, schedule: Schedule) -> float:
        """Where the last DDIM step lands (and where inversion starts)."""
        return 1.0 if self.set_alpha_to_one else float(schedule.alphas_cumprod[0])

    def grid(self, num_steps: int) -> np.ndarray:
        """The descending timestep grid of ``set_timesteps(num_steps)``."""
        return spaced_timesteps(
            self.num_train_timesteps, num_steps, self.timestep_spacing, self.steps_offset
        )


SD1_SCHEDULER = SchedulerConfig(
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
)  # the scheduler_config.json of SD 1.4 / 1.5 (single-file checkpoints carry none)


class StableDiffusion:
    """UNet + VAE + CLIP text encoder + tokenizer + DDIM schedule (see the module docstring)."""

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        scheduler: SchedulerConfig,
    ) -> None:
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.schedule = scheduler.schedule()

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        variant: str | None = None,
    ) -> StableDiffusion:
        """Load a diffusers pipeline folder (``model_index.json``, ``unet/``, ``vae/``,
        ``text_encoder/``, ``tokenizer/``, ``scheduler/``); weights cast to ``dtype``."""
        folder = Path(folder)
        _check_model_index(folder)
        raw = read_config(folder / "scheduler", "scheduler_config.json")
        scheduler = config_from_dict(
            SchedulerConfig, raw, source=f"{folder}/scheduler/scheduler_config.json"
        )
        load = {"dtype": dtype, "variant": variant}
        sd = cls(
            UNet2DConditionModel.from_pretrained(folder / "unet", **load),
            AutoencoderKL.from_pretrained(folder / "vae", **load),
            CLIPTextModel.from_pretrained(folder / "text_encoder", **load),
            CLIPTokenizer.from_pretrained(folder / "tokenizer"),
            scheduler,
        )
        return sd.to(device)

    @classmethod
    def from_compvis(
        cls,
        path: str | os.PathLike,
        tokenizer: str | os.PathLike,
        *,
        scheduler: SchedulerConfig = SD1_SCHEDULER,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        use_ema: bool = False,
        **configs,
    ) -> StableDiffusion:
        """A CompVis / LDM single file (SD 1.x layout, see :mod:`.compvis`) plus a CLIP
        tokenizer folder (the file carries none) and SD 1.x's scheduler. ``configs`` are
        ``load_compvis_checkpoint``'s ``unet_config`` / ``vae_config`` / ``text_config``."""
        from diffrepro.core.models.compvis import load_compvis_checkpoint

        tokenizer_folder = Path(tokenizer)
        if not tokenizer_folder.is_dir():
            raise FileNotFoundError(f"tokenizer folder not found: {tokenizer_folder}")
        unet, vae, text = load_compvis_checkpoint(path, use_ema=use_ema, dtype=dtype, **configs)
        sd = cls(unet, vae, text, CLIPTokenizer.from_pretrained(tokenizer_folder), scheduler)
        return sd.to(device)

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> StableDiffusion:
        for model in (self.unet, self.vae, self.text_encoder):
            model.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return self.unet.conv_in.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.conv_in.weight.dtype

    @property
    def latent_channels(self) -> int:
        return self.unet.config.in_channels

    # -- conditioning and latents

    def encode_prompt(self, prompts: str | list[str]) -> torch.Tensor:
        """CLIP last hidden states (B, 77, D) of the padded prompts, no attention mask."""
        ids = self.tokenizer(prompts).to(self.device)
        return self.text_encoder(ids).to(self.dtype)

    def encode_images(
        self,
        images: torch.Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Images in [-1, 1] -> latents: posterior mean (or a sample) shifted and scaled."""
        posterior = self.vae.encode(images.to(self.device, self.dtype))
        z = posterior.sample(generator) if sample else posterior.mode()
        shift = self.vae.config.shift_factor or 0.0
        return (z - shift) * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images, nominally in [-1, 1] (not clamped)."""
        shift = self.vae.config.shift_factor or 0.0
        return self.vae.decode(latents / self.vae.config.scaling_factor + shift)

    def initial_latents(
        self, batch: int, height: int, width: int, generator: Generators = None
    ) -> torch.Tensor:
        """N(0, I) latents for ``height`` x ``width`` pixels (a list of generators: per sample)."""
        f = self.vae.downscale_factor
        if height % f or width % f:
            raise ValueError(f"height and width must be multiples of {f}, got {height}x{width}")
        shape = (batch, self.latent_channels, height // f, width // f)
        return per_sample_noise(shape, generator, self.device, self.dtype)

    # -- denoising

    def denoiser(
        self, context: torch.Tensor
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``model(x, t)`` for the samplers: the UNet conditioned on ``context``."""
        return lambda x, t: self.unet(x, t, context)

    def guided_denoiser(
        self, cond: torch.Tensor, uncond: torch.Tensor, guidance_scale: float
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Classifier-free guidance, one batched UNet call on ``cat([uncond, cond])``."""
        return cfg_model(self.unet, cond, uncond, guidance_scale)

    def sample(
        self,
        prompts: str | list[str],
        *,
        negative_prompt: str | list[str] = "",
        num_steps: int = 50,
        guidance_scale: float = 7.5,
        eta: float = 0.0,
        latents: torch.Tensor | None = None,
        height: int | None = None,
        width: int | None = None,
        generator: Generators = None,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Classifier-free guided DDIM from ``latents`` (default: fresh noise); returns latents."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        cond = self.encode_prompt(prompts)
        negatives = (
            [negative_prompt] * len(prompts)
            if isinstance(negative_prompt, str)
            else negative_prompt
        )
        uncond = self.encode_prompt(list(negatives))
        if latents is None:
            default_height, default_width = self._default_size()
            latents = self.initial_latents(
                len(prompts), height or default_height, width or default_width, generator
            )
        model = self.guided_denoiser(cond, uncond, guidance_scale)
        return sample_ddim(
            model,
            latents.to(self.device, self.dtype),
            self.schedule,
            timesteps=self.scheduler.grid(num_steps),
            eta=eta,
            final_alpha_cumprod=self.scheduler.final_alpha_cumprod(self.schedule),
            prediction=self.scheduler.prediction,
            clip_x0=self.scheduler.clip_sample_range if self.scheduler.clip_sample else None,
            generator=generator,
            callback=callback,
            progress=progress,
        )

    def invert(
        self,
        latents: torch.Tensor,
        prompts: str | list[str],
        *,
        num_steps: int = 50,
        guidance_scale: float = 1.0,
        negative_prompt: str | list[str] = "",
        callback: Callback | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Deterministic DDIM inversion of clean latents to x_T over the same grid as
        :meth:`sample` (conditional only at ``guidance_scale=1``, the usual choice)."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        cond = self.encode_prompt(prompts)
        if guidance_scale == 1.0:
            model = self.denoiser(cond)
        else:
            negatives = (
                [negative_prompt] * len(prompts)
                if isinstance(negative_prompt, str)
                else negative_prompt
            )
            model = self.guided_denoiser(cond, self.encode_prompt(list(negatives)), guidance_scale)
        return invert_ddim(
            model,
            latents.to(self.device, self.dtype),
            self.schedule,
            timesteps=self.scheduler.grid(num_steps),
            final_alpha_cumprod=self.scheduler.final_alpha_cumprod(self.schedule),
            prediction=self.scheduler.prediction,
            callback=callback,
            progress=progress,
        )

    def _default_size(self) -> tuple[int, int]:
        """(height, width) in pixels from the UNet's ``sample_size`` (an int or (height, width))."""
        size = self.unet.config.sample_size or 64
        height, width = size if isinstance(size, tuple) else (size, size)
        return height * self.vae.downscale_factor, width * self.vae.downscale_factor


def _check_model_index(folder: Path) -> None:
    index = read_config(folder, "model_index.json")
    for name, classes in COMPONENTS.items():
        entry = index.get(name)
        if not (isinstance(entry, list) and len(entry) == 2 and entry[1]):
            raise ValueError(f"{folder}/model_index.json has no {name!r} component")
        if classes is not None and entry[1] not in classes:
            raise ValueError(
                f"{folder}/model_index.json: {name} is a {entry[1]}, expected one of {classes}"
            )
        if not (folder / name).is_dir():
            raise FileNotFoundError(f"missing component folder {folder / name}")
