"""Configuration dataclasses and the ``paper`` / ``demo`` / ``tiny`` presets."""

from __future__ import annotations

from dataclasses import dataclass, field

from diffrepro.core.config import check_ranges

from .skeleton import UPPER_BODY

REDUCTIONS = ("none", "median", "mean")
ALIGNMENTS = ("training", "official")


@dataclass(frozen=True)
class ModelConfig:
    """Network sizes; the defaults are the official DiffMotion configuration."""

    pose_dim: int = 45
    audio_dim: int = 27
    seqlen: int = 5  # previous poses in the condition
    lookahead: int = 20  # future speech frames in the condition
    lstm_hidden: int = 512
    lstm_layers: int = 2
    lstm_dropout: float = 0.2
    residual_layers: int = 6
    residual_channels: int = 2
    dilation_cycle: int = 10
    residual_hidden: int = 64
    step_embedding_dim: int = 16  # the sin/cos table is twice this wide
    diffusion_steps: int = 100
    beta_start: float = 1e-4
    beta_end: float = 0.1

    def __post_init__(self) -> None:
        check_ranges(
            self,
            positive=(
                "pose_dim", "audio_dim", "seqlen", "lstm_hidden", "lstm_layers",
                "residual_layers", "residual_channels", "dilation_cycle", "residual_hidden",
                "step_embedding_dim", "diffusion_steps", "beta_start", "beta_end",
            ),
            nonnegative=("lookahead",),
            fraction=("lstm_dropout", "beta_start", "beta_end"),
        )  # fmt: skip
        if self.beta_start >= self.beta_end:
            raise ValueError("ModelConfig.beta_start must be below beta_end")

    @property
    def speech_window(self) -> int:
        return self.seqlen + 1 + self.lookahead

    @property
    def condition_dim(self) -> int:
        return self.seqlen * self.pose_dim + self.speech_window * self.audio_dim


@dataclass(frozen=True)
class SamplingConfig:
    """Inference choices. ``reduce="none"`` (one sample per frame) is our default; the official
    code emits the per-dimension median of 200 samples (``samples_per_frame=200,
    reduce="median"``). ``steps=None`` runs all diffusion steps; fewer respaces the chain (an
    extension for CPU speed). ``alignment="training"`` conditions pose t on speech t-5..t+20 as
    in training; ``"official"`` reproduces the released sampler's one-frame shift."""

    samples_per_frame: int = 1
    reduce: str = "none"
    steps: int | None = None
    alignment: str = "training"

    def __post_init__(self) -> None:
        check_ranges(self, positive=("samples_per_frame", "steps"))  # choices: generate()


@dataclass(frozen=True)
class DiffMotionConfig:
    """Everything a training run needs; saved as JSON next to the checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    joints: tuple[str, ...] = UPPER_BODY
    fps: int = 20
    clip_frames: int = 120  # training windows of 6 s
    clip_hop: int = 60  # 50 % overlap
    mirror: bool = True
    data_dropout: float = 0.2
    batch_size: int = 80
    lr: float = 1.5e-3
    steps: int = 5300  # about 50 epochs of the 8428 Trinity training clips at batch 80
    log_every: int = 50
    checkpoint_every: int = 500  # the core loop keeps the last two and resumes exactly

    def __post_init__(self) -> None:
        check_ranges(
            self,
            positive=(
                "fps", "clip_frames", "clip_hop", "batch_size", "lr", "steps", "log_every",
                "checkpoint_every",
            ),
            fraction=("data_dropout",),
        )  # fmt: skip
        if not self.joints:
            raise ValueError("DiffMotionConfig.joints must name at least one joint")


PRESETS: dict[str, DiffMotionConfig] = {
    "paper": DiffMotionConfig(),
    "demo": DiffMotionConfig(
        model=ModelConfig(lstm_hidden=96, lstm_layers=2, lstm_dropout=0.1),
        sampling=SamplingConfig(steps=25),
        clip_frames=60,
        clip_hop=15,
        batch_size=16,
        lr=2e-3,
        steps=300,
        checkpoint_every=150,
    ),
    "tiny": DiffMotionConfig(
        model=ModelConfig(
            lstm_hidden=32, lstm_layers=1, lstm_dropout=0.0, residual_layers=3,
            residual_channels=2, residual_hidden=16, step_embedding_dim=8, lookahead=4,
        ),
        sampling=SamplingConfig(steps=5),
        clip_frames=20,
        clip_hop=10,
        batch_size=8,
        lr=3e-3,
        steps=30,
        log_every=10,
    ),
}  # fmt: skip
