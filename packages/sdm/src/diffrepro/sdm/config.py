"""SDM configs and presets: ``paper`` (published settings), ``demo`` (CPU), ``tiny`` (tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from diffrepro.core.config import check_ranges
from diffrepro.sdm.decoding import DecodeConfig
from diffrepro.sdm.discriminator import DiscriminatorConfig
from diffrepro.sdm.masks import MaskConfig
from diffrepro.sdm.network import NetworkConfig


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation (MAT's Adam settings), loss weights λ = (adv, pcp, nll) and the unroll."""

    steps: int = 1_562_500  # 50,000 kimg at batch 32 (MAT's Places512 budget)
    batch_size: int = 32
    lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    adv_weight: float = 1.0
    perceptual_weight: float = 2.0
    nll_weight: float = 1e-4
    r1_gamma: float = 10.0
    r1_interval: int = 16
    grad_clip: float = 1.0  # max global gradient norm, G and D each (not in MAT; stability)
    unroll: int = 2  # predict→pick→sample iterations per batch, detached in between
    unroll_iterations: int = 4  # T used to draw the schedule positions of unrolled iterations
    ema_decay: float = 0.9978  # MAT: half-life 10 kimg at batch 32 (0.5 ** (32 / 10_000))
    flip: bool = True
    resnet50_weights: str = ""  # torchvision ImageNet resnet50 state dict; "" = substitute
    log_every: int = 100
    checkpoint_every: int = 10_000


@dataclass(frozen=True)
class SDMConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    masks: MaskConfig = field(default_factory=lambda: MaskConfig(size=512, hole_range=(0.0, 1.0)))
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        sizes = {self.network.resolution, self.discriminator.resolution, self.masks.size}
        if len(sizes) != 1:
            raise ValueError(
                "network.resolution, discriminator.resolution and masks.size must agree, got "
                f"{self.network.resolution}, {self.discriminator.resolution}, {self.masks.size}"
            )
        if not 1 <= self.train.unroll <= self.train.unroll_iterations:
            raise ValueError("train.unroll must lie in [1, train.unroll_iterations]")
        self._check_ranges()

    def _check_ranges(self) -> None:
        """Counts, sizes and rates of every part (a zero batch or step count is an error)."""
        check_ranges(
            self.network,
            positive=(
                "resolution", "base_channels", "max_channels", "levels", "attention_resolutions",
                "num_heads", "num_groups", "style_dim",
            ),
        )  # fmt: skip
        check_ranges(self.discriminator, positive=("resolution", "base_channels", "max_channels"))
        check_ranges(self.masks, fraction=("hole_range",))
        check_ranges(self.decode, positive=("steps",), nonnegative=("alpha",))
        check_ranges(
            self.train,
            positive=(
                "steps", "batch_size", "lr", "r1_interval", "grad_clip", "unroll_iterations",
                "log_every", "checkpoint_every",
            ),
            nonnegative=("adv_weight", "perceptual_weight", "nll_weight", "r1_gamma"),
            fraction=("ema_decay",),
        )  # fmt: skip
        if len(self.train.betas) != 2 or not all(0 <= b < 1 for b in self.train.betas):
            raise ValueError(f"train.betas must be two numbers in [0, 1), got {self.train.betas}")

    @property
    def resolution(self) -> int:
        return self.network.resolution


PRESETS: dict[str, SDMConfig] = {
    "paper": SDMConfig(),
    "demo": SDMConfig(
        network=NetworkConfig(
            resolution=32,
            base_channels=16,
            max_channels=64,
            levels=3,
            attention_resolutions=(8,),
            num_heads=2,
            num_groups=8,
            style_dim=64,
        ),
        discriminator=DiscriminatorConfig(resolution=32, base_channels=16, max_channels=64),
        masks=MaskConfig(size=32, kind="large", hole_range=(0.3, 0.7)),
        train=TrainConfig(
            steps=500,
            batch_size=12,
            lr=2e-3,
            adv_weight=0.1,  # toy scale: a GAN barely starts in 6 k images (documented)
            ema_decay=0.99,
            log_every=20,
            checkpoint_every=100,
        ),
    ),
    # the zoo entry ``sdm-emoji``: the demo network on 32 px emoji (train split), about 7 min
    # on one CPU core; changing it changes the entry's cache key (a rebuild)
    "emoji": SDMConfig(
        network=NetworkConfig(
            resolution=32,
            base_channels=16,
            max_channels=64,
            levels=3,
            attention_resolutions=(8,),
            num_heads=2,
            num_groups=8,
            style_dim=64,
        ),
        discriminator=DiscriminatorConfig(resolution=32, base_channels=16, max_channels=64),
        masks=MaskConfig(size=32, kind="large", hole_range=(0.3, 0.7)),
        train=TrainConfig(
            steps=1200,
            batch_size=12,
            lr=2e-3,
            adv_weight=0.1,  # toy scale: a GAN barely starts in 14 k images (documented)
            ema_decay=0.99,
            log_every=20,
            checkpoint_every=300,
        ),
    ),
    "tiny": SDMConfig(
        network=NetworkConfig(
            resolution=16,
            base_channels=8,
            max_channels=16,
            levels=2,
            attention_resolutions=(8,),
            num_heads=1,
            num_groups=4,
            style_dim=16,
        ),
        discriminator=DiscriminatorConfig(resolution=16, base_channels=8, max_channels=16),
        masks=MaskConfig(size=16, kind="large", hole_range=(0.2, 0.6)),
        decode=DecodeConfig(steps=3),
        train=TrainConfig(
            steps=4, batch_size=4, lr=2e-3, ema_decay=0.9, log_every=1, checkpoint_every=1000
        ),
    ),
}
