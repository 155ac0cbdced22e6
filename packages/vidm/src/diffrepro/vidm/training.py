"""Training both generators with the shared loop (``diffrepro.core.train``), and loading them back.

``train_stage(cfg, "content" | "motion", out_dir)`` writes ``out_dir/<stage>/checkpoints/...``
(weights, EMA and the full VIDM config as JSON, so ``num_frames`` travels with the weights) and
TensorBoard logs in ``out_dir/<stage>/tb``. ``load_generator(folder, stage)`` returns the EMA
network of the latest checkpoint and the config it was trained with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from diffrepro.core.checkpoints import load_checkpoint, load_state_dict
from diffrepro.core.train import (
    TrainResult,
    latest_checkpoint,
    model_config_from_checkpoint,
    train,
)
from diffrepro.vidm.config import VIDMConfig
from diffrepro.vidm.content import ContentUNet
from diffrepro.vidm.diffusion import make_schedule, training_loss
from diffrepro.vidm.emoji_sprites import EmojiSprites, EmojiSpritesConfig
from diffrepro.vidm.flow import FlowSource, make_flow_source
from diffrepro.vidm.motion_unet import MotionUNet
from diffrepro.vidm.pairs import content_batch, motion_batch
from diffrepro.vidm.synthetic import SyntheticConfig, SyntheticSprites
from diffrepro.vidm.video_folder import VideoFolder

STAGES = ("content", "motion")
# clip key of precomputed training flow (first frame -> every frame), see with_training_flow
TRAINING_FLOW = "training_flow"


def make_dataset(cfg: VIDMConfig) -> torch.utils.data.Dataset:
    """The generated videos of ``data.domain`` (``data.root`` empty) or a folder of videos."""
    data = cfg.data
    if not data.root:
        return generated_dataset(data.generated())
    return VideoFolder(data.root, size=data.image_size, frames=data.frames)


def generated_dataset(cfg: EmojiSpritesConfig | SyntheticConfig) -> torch.utils.data.Dataset:
    """The generated clips of a domain config (emoji sprites or the shapes over photos)."""
    return EmojiSprites(cfg) if isinstance(cfg, EmojiSpritesConfig) else SyntheticSprites(cfg)


def build_network(cfg: VIDMConfig, stage: str) -> nn.Module:
    _check_stage(stage)
    return ContentUNet(cfg.content) if stage == "content" else MotionUNet(cfg.motion)


def flow_radius(cfg: VIDMConfig) -> int:
    """``flow.radius``; 0 is the documented "half the image size" (negative is an error)."""
    if cfg.flow.radius < 0:
        raise ValueError(f"flow.radius must be >= 0 (0 = image_size // 2), got {cfg.flow.radius}")
    return cfg.flow.radius if cfg.flow.radius > 0 else cfg.data.image_size // 2


def training_flow_source(cfg: VIDMConfig) -> FlowSource | None:
    """None means ground truth (the dataset's ``flow``), else the configured estimator"""
    if cfg.flow.training == "ground_truth":
        if cfg.data.root:
            raise ValueError(
                "flow.training=ground_truth needs the synthetic data; "
                "set flow.training=block_matching"
            )
        return None
    return make_flow_source(cfg.flow.training, radius=flow_radius(cfg))


def generation_flow_source(cfg: VIDMConfig) -> FlowSource:
    return make_flow_source(cfg.flow.generation, radius=flow_radius(cfg))


def with_training_flow(
    cfg: VIDMConfig, clips: list[dict[str, Tensor]], *, batch: int = 64
) -> list[dict[str, Tensor]]:
    """``clips`` with the flow of ``flow.training`` from frame 0 to every frame precomputed
    (key ``training_flow``), so that a frozen estimator runs once per clip, not once per
    training step; the motion loss then reads it instead of calling the estimator. Unchanged
    for ``flow.training=ground_truth`` (the clips' own ``flow`` is used)."""
    source = training_flow_source(cfg)
    if source is None:
        return clips
    out = []
    for start in range(0, len(clips), batch):
        chunk = clips[start : start + batch]
        frames = torch.stack([clip["frames"] for clip in chunk])  # (b, F, 3, H, W)
        count = frames.shape[1]
        first = frames[:, :1].expand(-1, count, -1, -1, -1).flatten(0, 1)
        flow = source(first, frames.flatten(0, 1)).unflatten(0, (len(chunk), count))
        out += [{**clip, TRAINING_FLOW: f} for clip, f in zip(chunk, flow)]
    return out


def stage_loss(cfg: VIDMConfig, stage: str) -> Callable[..., Tensor]:
    """``loss_fn(model, batch, generator=None) -> scalar`` for the shared training loop (a
    seeded ``generator`` fixes the frame indices, flips, steps and noise, e.g. for evaluation)."""
    _check_stage(stage)
    schedule = make_schedule(cfg.diffusion)
    if stage == "content":

        def content_loss(
            model: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | None = None
        ) -> Tensor:
            x0 = content_batch(batch["frames"], generator, hflip=cfg.data.hflip)
            return training_loss(model, x0, schedule, cfg.diffusion, generator)["loss"]

        return content_loss
    flow_source = training_flow_source(cfg)

    def motion_loss(
        model: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> Tensor:
        if TRAINING_FLOW in batch:  # the training flow source's estimates, computed once
            flow, source = batch[TRAINING_FLOW], None
        else:
            flow, source = (batch.get("flow") if flow_source is None else None), flow_source
        example = motion_batch(
            batch["frames"],
            flow,
            generator,
            flow_source=source,
            upstream_range=cfg.data.upstream_range,
            hflip=cfg.data.hflip,
        )

        def model_fn(x: Tensor, t: Tensor) -> Tensor:
            return model(x, t, example.index, example.first, example.flow)

        return training_loss(model_fn, example.target, schedule, cfg.diffusion, generator)["loss"]

    return motion_loss


def train_stage(
    cfg: VIDMConfig,
    stage: str,
    out_dir: Path,
    *,
    device: str | torch.device = "cpu",
    dataset: torch.utils.data.Dataset | list | None = None,
    resume: bool = True,
) -> tuple[nn.Module, TrainResult]:
    """Train one generator; returns the network carrying its EMA weights, and the loop's result."""
    loss_fn = stage_loss(cfg, stage)
    model = build_network(cfg, stage)
    result = train(
        model,
        loss_fn,
        dataset if dataset is not None else make_dataset(cfg),
        cfg.train,
        Path(out_dir) / stage,
        model_config=cfg,
        resume=resume,
        device=device,
    )
    if result.ema is not None:
        result.ema.copy_to(model)
    return model.eval(), result


def load_generator(
    folder: Path, stage: str, device: str | torch.device = "cpu"
) -> tuple[nn.Module, VIDMConfig]:
    """The EMA network of the latest checkpoint under ``folder/<stage>`` (or ``folder`` itself)."""
    _check_stage(stage)
    folder = Path(folder)
    run = folder / stage if (folder / stage).is_dir() else folder
    checkpoint = latest_checkpoint(run)
    if checkpoint is None:
        raise FileNotFoundError(
            f"no {stage} checkpoint under {run} (train it with `vidm train --stage {stage}`)"
        )
    path = checkpoint / "ema.safetensors"
    if not path.is_file():
        path = checkpoint / "model.safetensors"
    weights, meta = load_checkpoint(path)
    cfg = model_config_from_checkpoint(VIDMConfig, meta, path)
    model = build_network(cfg, stage)
    load_state_dict(model, weights, source=str(path))
    return model.to(device).eval(), cfg


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
