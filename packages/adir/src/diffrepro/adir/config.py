"""ADIR configs (frozen dataclasses) and the presets ``paper``, ``demo`` and ``tiny``.

``paper`` is the published setting (spec §3.4 and §4, values from a secondary digest of the v2
PDF, unverified): ADM ImageNet 256 unconditional (learned variance), 1000 sampling steps, K = 20
neighbours, LoRA r = 16, α = 8 on all conv layers, Adam 1e-4, 400 iterations, batch 6.
``demo`` is the CPU-scale reproduction (a small 32 px model), ``tiny`` runs in seconds for tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from diffrepro.core.config import check_ranges
from diffrepro.core.models.unet import UNetConfig, unet_preset
from diffrepro.core.schedules import space_timesteps
from diffrepro.core.train import TrainConfig

from .guidance import GuidanceConfig
from .tasks import TaskConfig

LORA_TARGETS = ("conv", "conv+linear")


@dataclass(frozen=True)
class AdaptConfig:
    """K-NN retrieval and LoRA fine-tuning with the ε loss (spec §3.4)."""

    enabled: bool = True
    k: int = 20
    search: str = "kdtree"
    rank: int = 16
    alpha: float = 8.0
    targets: str = "conv"
    lr: float = 1e-4
    iterations: int = 400
    batch_size: int = 6

    def __post_init__(self) -> None:
        if self.targets not in LORA_TARGETS:
            raise ValueError(f"adapt.targets must be one of {LORA_TARGETS}, got {self.targets!r}")
        if self.k < 1 or self.iterations < 0 or self.batch_size < 1:
            raise ValueError("adapt.k and adapt.batch_size must be positive, iterations >= 0")


@dataclass(frozen=True)
class ADIRConfig:
    unet: UNetConfig = field(default_factory=lambda: unet_preset("imagenet256_uncond"))
    schedule: str = "linear"
    diffusion_steps: int = 1000
    sample_steps: str = "1000"
    clip_x0: float | None = 1.0
    noise_sigma: float = 0.0
    # None: sample from pure noise at T (the paper). A timestep t: start the guided chain at the
    # sampling level nearest below t from q(x_t | A⁺y) (SDEdit-style; for weak priors).
    start_timestep: int | None = None
    task: TaskConfig = TaskConfig()
    guidance: GuidanceConfig = GuidanceConfig()
    adapt: AdaptConfig = AdaptConfig()
    train: TrainConfig = TrainConfig(steps=20000, batch_size=32, lr=1e-4, checkpoint_every=1000)

    def __post_init__(self) -> None:
        check_ranges(
            self,
            positive=("diffusion_steps", "clip_x0"),
            nonnegative=("noise_sigma", "start_timestep"),
        )
        if self.start_timestep is not None and self.start_timestep >= self.diffusion_steps:
            raise ValueError(
                f"start_timestep must be below diffusion_steps ({self.diffusion_steps}), "
                f"got {self.start_timestep}"
            )
        try:
            space_timesteps(self.diffusion_steps, self.sample_steps)
        except ValueError as err:
            raise ValueError(f"sample_steps={self.sample_steps!r}: {err}") from None
        check_ranges(
            self.unet,
            positive=(
                "image_size", "in_channels", "model_channels", "out_channels", "num_res_blocks",
                "attention_resolutions", "channel_mult", "num_heads", "num_groups",
            ),
            fraction=("dropout",),
        )  # fmt: skip
        if self.unet.model_channels % self.unet.num_groups:
            raise ValueError(
                f"unet.model_channels ({self.unet.model_channels}) must be a multiple of "
                f"unet.num_groups ({self.unet.num_groups})"
            )

    @property
    def variance(self) -> str:
        """The reverse-step variance: ADM's learned range when the UNet learns sigma."""
        return "learned_range" if self.unet.learn_sigma else "fixed_small"


DEMO_UNET = UNetConfig(
    image_size=32,
    model_channels=16,
    channel_mult=(1, 2, 2),
    num_res_blocks=1,
    attention_resolutions=(8,),
    num_heads=2,
    resblock_updown=True,
    num_groups=8,
)

PRESETS: dict[str, ADIRConfig] = {
    "paper": ADIRConfig(),
    "demo": ADIRConfig(
        unet=DEMO_UNET,
        sample_steps="50",
        noise_sigma=0.02,
        guidance=GuidanceConfig(scale=1.5),
        adapt=AdaptConfig(k=8, lr=1e-3, iterations=30, batch_size=6),
        train=TrainConfig(steps=600, batch_size=16, lr=1e-3, ema_decay=0.99, checkpoint_every=200),
    ),
    "tiny": ADIRConfig(
        unet=dataclasses.replace(unet_preset("tiny"), model_channels=8, num_groups=4),
        sample_steps="5",
        noise_sigma=0.02,
        adapt=AdaptConfig(k=3, rank=2, alpha=1.0, lr=1e-3, iterations=2, batch_size=2),
        train=TrainConfig(
            steps=3, batch_size=4, lr=1e-3, ema_decay=0.9, log_every=1, checkpoint_every=2
        ),
    ),
}
