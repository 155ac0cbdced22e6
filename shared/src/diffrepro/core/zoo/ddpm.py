"""emoji-ddpm / emoji-ddpm-cond: pixel-space ADM UNets on 32 px emoji (ε-prediction).

Saved like an official guided-diffusion release: ``model.safetensors`` holds the state dict
with the official key names (identity mapping, so :func:`load_guided_diffusion` opens it as it
opens ``256x256_diffusion_uncond.pt``), ``model_flags.json`` the UNet flags (the README's
MODEL_FLAGS as a :class:`UNetConfig`) and ``diffusion_flags.json`` the DIFFUSION_FLAGS
(``diffusion_steps``, ``noise_schedule``, ``learn_sigma``, ``predict_xstart``).
The class-conditional variant takes ``y`` = the coarse class index
(:data:`~diffrepro.core.emoji.COARSE_CLASSES`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from diffrepro.core.checkpoints import atomic_write, save_checkpoint
from diffrepro.core.emoji import COARSE_CLASSES, DATA_VERSION, images, select
from diffrepro.core.losses import diffusion_loss, sample_timesteps
from diffrepro.core.models.unet import UNetConfig, UNetModel, load_guided_diffusion
from diffrepro.core.samplers import per_sample_noise, sample_ddim
from diffrepro.core.schedules import Schedule
from diffrepro.core.train import TrainConfig
from diffrepro.core.zoo.registry import BuildContext, ZooEntry
from diffrepro.core.zoo.training import fit

WEIGHTS = "model.safetensors"
MODEL_FLAGS = "model_flags.json"
DIFFUSION_FLAGS = "diffusion_flags.json"

DDPM_UNET = UNetConfig(
    image_size=32,
    model_channels=32,
    channel_mult=(1, 2, 2),
    num_res_blocks=1,
    attention_resolutions=(8,),
    num_head_channels=32,
    resblock_updown=True,
    use_scale_shift_norm=True,
    num_groups=16,
)


@dataclasses.dataclass(frozen=True)
class DiffusionFlags:
    """guided-diffusion's DIFFUSION_FLAGS (only what an ε-model with fixed variance needs)."""

    diffusion_steps: int = 1000
    noise_schedule: str = "linear"
    learn_sigma: bool = False
    predict_xstart: bool = False

    def schedule(self) -> Schedule:
        return Schedule.named(self.noise_schedule, self.diffusion_steps)


@dataclasses.dataclass(frozen=True)
class DDPMConfig:
    unet: UNetConfig = DDPM_UNET
    diffusion: DiffusionFlags = DiffusionFlags()


@dataclasses.dataclass(frozen=True)
class DDPMRecipe:
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 100
    ema_decay: float = 0.995
    seed: int = 0


@dataclasses.dataclass
class PixelDiffusion:
    """An ADM UNet with its schedule: ``unet(x, t, y)``; ``sample(...)`` draws images."""

    unet: UNetModel
    schedule: Schedule
    class_names: tuple[str, ...] | None = None

    @torch.no_grad()
    def sample(
        self,
        batch: int,
        *,
        labels: torch.Tensor | None = None,
        num_steps: int = 50,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """DDIM (eta 0) samples in [-1, 1]; ``labels`` (B,) for the class-conditional model."""
        size = self.unet.config.image_size
        device = next(self.unet.parameters()).device
        if (labels is None) != (self.unet.config.num_classes is None):
            raise ValueError("labels are needed exactly when the model is class-conditional")
        x = per_sample_noise((batch, 3, size, size), generator, device, torch.float32)
        y = None if labels is None else labels.to(device)
        grid = _ddim_grid(len(self.schedule), num_steps)
        return sample_ddim(
            lambda x_t, t: self.unet(x_t, t, y),
            x,
            self.schedule,
            timesteps=grid,
            clip_x0=1.0,
        ).clamp(-1, 1)


def _ddim_grid(num_timesteps: int, num_steps: int) -> list[int]:
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(f"num_steps must be in [1, {num_timesteps}], got {num_steps}")
    stride = num_timesteps // num_steps
    return list(range(num_timesteps - 1 - (num_timesteps - 1) % stride, -1, -stride))[:num_steps]


def ddpm_loss(schedule: Schedule, conditional: bool):
    def loss_fn(model, batch) -> torch.Tensor:
        x0, y = batch
        t = sample_timesteps(len(x0), len(schedule), device=x0.device)
        noise = torch.randn_like(x0)
        labels = y if conditional else None
        terms = diffusion_loss(
            lambda x, ts: model(x, ts, labels), x0, t, schedule, noise=noise, prediction="eps"
        )
        return terms["loss"].mean()

    return loss_fn


def build_ddpm(entry: ZooEntry, ctx: BuildContext) -> dict:
    config: DDPMConfig = entry.config
    recipe: DDPMRecipe = entry.recipe
    x, _ = images(config.unet.image_size, "train")
    labels = torch.tensor([e.label for e in select("train")])
    data = torch.utils.data.TensorDataset(x, labels)
    torch.manual_seed(recipe.seed)
    unet = UNetModel(config.unet)
    schedule = config.diffusion.schedule()
    train_config = TrainConfig(
        steps=recipe.steps,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        lr_decay="cosine",  # channels-last measured slower for this UNet on CPU (1.17x)
        warmup_steps=recipe.warmup_steps,
        ema_decay=recipe.ema_decay,
        checkpoint_every=recipe.steps,
        log_every=max(1, recipe.steps // 100),
        seed=recipe.seed,
    )
    conditional = config.unet.num_classes is not None
    start = time.perf_counter()
    result = fit(entry.name, unet, ddpm_loss(schedule, conditional), data, train_config, ctx)
    seconds = time.perf_counter() - start
    save_adm(unet.eval(), config.diffusion, ctx.out_dir)
    tail = result.losses[-min(100, len(result.losses)) :]
    return {
        "train_seconds": round(seconds, 1),
        "final_loss_mean_last_100": sum(tail) / len(tail),
        "parameters": sum(p.numel() for p in unet.parameters()),
    }


def save_adm(unet: UNetModel, diffusion: DiffusionFlags, folder: Path) -> None:
    """The official layout: identity-keyed weights plus MODEL_FLAGS / DIFFUSION_FLAGS JSON."""
    save_checkpoint(folder / WEIGHTS, unet, unet.config)
    for name, flags in ((MODEL_FLAGS, unet.config), (DIFFUSION_FLAGS, diffusion)):
        text = json.dumps(dataclasses.asdict(flags), indent=2, sort_keys=True)
        atomic_write(folder / name, lambda p, text=text: p.write_text(text + "\n"))


def open_ddpm(folder: Path, device: str = "cpu") -> PixelDiffusion:
    flags = json.loads((folder / MODEL_FLAGS).read_text())
    config = UNetConfig(**flags)
    unet = load_guided_diffusion(folder / WEIGHTS, config).eval().to(device)
    diffusion = DiffusionFlags(**json.loads((folder / DIFFUSION_FLAGS).read_text()))
    names = COARSE_CLASSES if config.num_classes is not None else None
    return PixelDiffusion(unet, diffusion.schedule(), names)


CARD_TEXT = """
## Use

    ddpm = zoo.load("emoji-ddpm")                      # PixelDiffusion
    x = ddpm.sample(16, num_steps=50, generator=g)     # (16, 3, 32, 32) in [-1, 1]
    unet = load_guided_diffusion(folder / "model.safetensors", UNetConfig(**model_flags))

## Honest limits

A small ADM UNet trained for minutes on one CPU core on ~1,300 emoji at 32 px: samples are
emoji-like shapes and colours, not faithful emoji. With this little data a pixel DDPM trained
long enough memorises; the memorisation rate above measures how far this one went.
"""


def ddpm_entry(
    name: str = "emoji-ddpm",
    *,
    conditional: bool = False,
    config: DDPMConfig | None = None,
    recipe: DDPMRecipe | None = None,
) -> ZooEntry:
    if config is None:
        unet = dataclasses.replace(
            DDPM_UNET, num_classes=len(COARSE_CLASSES) if conditional else None
        )
        config = DDPMConfig(unet=unet)
    kind = "class-conditional (coarse classes)" if conditional else "unconditional"
    return ZooEntry(
        name=name,
        summary=f"Pixel DDPM, {kind}: guided-diffusion ADM UNet, ε-prediction, linear betas, "
        "32 px emoji, saved in the official checkpoint layout.",
        config=config,
        recipe=recipe or DDPMRecipe(),
        build=build_ddpm,
        open=open_ddpm,
        data_version=DATA_VERSION,
        card=CARD_TEXT,
    )
