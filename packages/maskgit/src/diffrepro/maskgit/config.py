"""MaskGIT configs and presets: ``paper`` (official settings), ``demo`` (CPU), ``tiny`` (tests)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from diffrepro.maskgit.decoding import DecodeConfig
from diffrepro.maskgit.transformer import TransformerConfig
from diffrepro.maskgit.vqgan import VQGANConfig


@dataclass(frozen=True)
class TokenizerTrainConfig:
    """Official VQGAN optimiser: Adam β = (0, 0.99), lr 1e-4, EMA 0.999. No GAN or perceptual
    term here (their networks are not released); the reconstruction loss type is unknown
    (``l2`` default)."""

    steps: int = 1_000_000
    batch_size: int = 256
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.99)
    ema_decay: float | None = 0.999
    reconstruction: str = "l2"
    flip: bool = True
    log_every: int = 100
    checkpoint_every: int = 10_000


@dataclass(frozen=True)
class TransformerTrainConfig:
    """Official MVTM settings: AdamW β = (0.9, 0.96), lr 1e-4, weight decay 0.045, 5000 warmup
    steps then constant, label smoothing 0.1, cosine masking, loss on masked tokens only, EMA
    0.999. ``cond_drop`` > 0 (label dropout, for ``guidance_uncond=mask``) is not in MaskGIT."""

    steps: int = 1_500_000  # 300 ImageNet epochs at batch 256 (the config says 2M)
    batch_size: int = 256
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.96)
    weight_decay: float = 0.045
    warmup_steps: int = 5000
    grad_clip: float | None = 1.0
    label_smoothing: float = 0.1
    mask_schedule: str = "cosine"
    masked_only: bool = True
    cond_drop: float = 0.0
    ema_decay: float | None = 0.999
    flip: bool = True
    log_every: int = 100
    checkpoint_every: int = 10_000


@dataclass(frozen=True)
class MaskGitConfig:
    image_size: int = 256
    tokenizer: VQGANConfig = field(default_factory=VQGANConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train_tokenizer: TokenizerTrainConfig = field(default_factory=TokenizerTrainConfig)
    train: TransformerTrainConfig = field(default_factory=TransformerTrainConfig)

    def __post_init__(self) -> None:
        f = self.tokenizer.downsample
        if self.image_size % f or self.image_size // f != self.transformer.latent_size:
            raise ValueError(
                f"image_size {self.image_size} / tokenizer downsampling {f} must equal "
                f"transformer.latent_size {self.transformer.latent_size}"
            )
        if self.tokenizer.codebook_size != self.transformer.codebook_size:
            raise ValueError(
                f"tokenizer.codebook_size {self.tokenizer.codebook_size} and "
                f"transformer.codebook_size {self.transformer.codebook_size} must agree"
            )
        if not 0 <= self.train.label_smoothing < 1 or not 0 <= self.train.cond_drop < 1:
            raise ValueError("train.label_smoothing and train.cond_drop must lie in [0, 1)")

    def with_classes(self, num_classes: int) -> MaskGitConfig:
        return replace(self, transformer=replace(self.transformer, num_classes=num_classes))


DEMO = MaskGitConfig(
    image_size=32,
    tokenizer=VQGANConfig(
        filters=16,
        channel_multipliers=(1, 2, 2),
        num_res_blocks=1,
        embedding_dim=16,
        codebook_size=128,
        groups=8,
    ),
    transformer=TransformerConfig(
        codebook_size=128,
        num_classes=8,
        latent_size=8,
        width=96,
        depth=3,
        heads=4,
        mlp_dim=384,
        dropout=0.1,
        attention_dropout=0.1,
    ),
    decode=DecodeConfig(num_iter=8),
    train_tokenizer=TokenizerTrainConfig(
        steps=400,
        batch_size=32,
        lr=2e-3,
        betas=(0.5, 0.99),
        ema_decay=0.99,
        log_every=50,
        checkpoint_every=200,
    ),
    train=TransformerTrainConfig(
        steps=800,
        batch_size=32,
        lr=1.5e-3,
        warmup_steps=50,
        ema_decay=0.99,
        log_every=50,
        checkpoint_every=200,
    ),
)

TINY = MaskGitConfig(
    image_size=16,
    tokenizer=VQGANConfig(
        filters=8,
        channel_multipliers=(1, 2, 2),
        num_res_blocks=1,
        embedding_dim=8,
        codebook_size=16,
        groups=4,
    ),
    transformer=TransformerConfig(
        codebook_size=16,
        num_classes=3,
        latent_size=4,
        width=32,
        depth=2,
        heads=2,
        mlp_dim=64,
    ),
    decode=DecodeConfig(num_iter=4),
    train_tokenizer=TokenizerTrainConfig(
        steps=4, batch_size=4, lr=1e-3, ema_decay=None, log_every=2, checkpoint_every=2
    ),
    train=TransformerTrainConfig(
        steps=4,
        batch_size=4,
        lr=1e-3,
        warmup_steps=1,
        ema_decay=None,
        log_every=2,
        checkpoint_every=2,
    ),
)

PRESETS: dict[str, MaskGitConfig] = {"paper": MaskGitConfig(), "demo": DEMO, "tiny": TINY}
