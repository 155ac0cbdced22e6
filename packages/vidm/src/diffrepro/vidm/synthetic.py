"""Synthetic sprite videos with exact ground-truth flow (the embedded data of tests and demo).

Each clip: a static background cut from one of the embedded photos (a random crop, area-
downsampled and darkened), and 1-2 solid sprites (square or disc, bright palette colour) moving
with a constant integer velocity and bouncing off the walls. Positions are integers, so the
ground-truth flow from the first frame to frame ``k`` is exact: on the pixels of sprite ``j`` it
is ``pos_j(0) - pos_j(k)``, elsewhere 0 (see :mod:`diffrepro.vidm.flow` for the convention).

Clip ``i`` depends only on ``(seed, i)``: the dataset is generated on the fly and deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

PALETTE = torch.tensor(
    [[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1], [1, 1, 1]],
    dtype=torch.float32,
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size of the sprite videos. ``sprite_size`` and ``max_speed`` are in pixels."""

    size: int = 32
    frames: int = 8
    num_clips: int = 512
    min_sprites: int = 1
    max_sprites: int = 2
    sprite_size: tuple[int, int] = (5, 8)
    max_speed: int = 2
    background_scale: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        low, high = self.sprite_size
        if not 1 <= low <= high < self.size:
            raise ValueError(f"sprite_size {self.sprite_size} must lie in [1, size={self.size})")
        if self.frames < 2 or self.num_clips < 1 or self.max_speed < 1:
            raise ValueError("synthetic data needs frames >= 2, num_clips >= 1 and max_speed >= 1")
        if not 1 <= self.min_sprites <= self.max_sprites:
            raise ValueError("synthetic data needs 1 <= min_sprites <= max_sprites")


@dataclass(frozen=True)
class Sprite:
    mask: Tensor  # (s, s) bool
    colour: Tensor  # (3,)
    start: tuple[int, int]  # top-left (y, x) in frame 0
    velocity: tuple[int, int]  # (vy, vx) pixels per frame

    def position(self, frame: int, size: int) -> tuple[int, int]:
        span = size - self.mask.shape[0]
        return tuple(_bounce(p + v * frame, span) for p, v in zip(self.start, self.velocity))


def _bounce(coordinate: int, span: int) -> int:
    """Reflect ``coordinate`` into [0, span] (constant speed, elastic walls)."""
    if span == 0:
        return 0
    phase = coordinate % (2 * span)
    return phase if phase <= span else 2 * span - phase


class SyntheticSprites(torch.utils.data.Dataset):
    """Clips as dicts: ``frames`` (F, 3, H, W) in [-1, 1], ``flow`` (F, 2, H, W) from frame 0
    to each frame (pixels; zero at frame 0) and ``labels`` (F, H, W) int64: 0 = background,
    j = sprite j on top at that pixel."""

    def __init__(self, cfg: SyntheticConfig, photos: Sequence[Tensor] | None = None) -> None:
        self.cfg = cfg
        self.photos = list(photos) if photos is not None else embedded_photos()
        if not self.photos:
            raise ValueError("SyntheticSprites needs at least one background photo")
        need = cfg.size * cfg.background_scale
        if any(min(p.shape[-2:]) < need for p in self.photos):
            raise ValueError(f"background photos must be at least {need} px on each side")

    def __len__(self) -> int:
        return self.cfg.num_clips

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + index)
        background = self._background(gen)
        count = _randint(gen, self.cfg.min_sprites, self.cfg.max_sprites)
        sprites = [self._sprite(gen) for _ in range(count)]
        return render_clip(background, sprites, self.cfg.frames)

    def _background(self, gen: torch.Generator) -> Tensor:
        photo = self.photos[_randint(gen, 0, len(self.photos) - 1)]
        crop = self.cfg.size * self.cfg.background_scale
        top = _randint(gen, 0, photo.shape[-2] - crop)
        left = _randint(gen, 0, photo.shape[-1] - crop)
        patch = photo[:, top : top + crop, left : left + crop]
        small = F.avg_pool2d(patch[None], self.cfg.background_scale)[0]
        return 0.5 * small - 0.35

    def _sprite(self, gen: torch.Generator) -> Sprite:
        size = self.cfg.size
        side = _randint(gen, *self.cfg.sprite_size)
        if _randint(gen, 0, 1):
            mask = torch.ones(side, side, dtype=torch.bool)
        else:
            centre = (side - 1) / 2
            ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
            mask = (ys - centre) ** 2 + (xs - centre) ** 2 <= (side / 2) ** 2
        colour = PALETTE[_randint(gen, 0, len(PALETTE) - 1)]
        start = (_randint(gen, 0, size - side), _randint(gen, 0, size - side))
        velocity = (0, 0)
        while velocity == (0, 0):
            s = self.cfg.max_speed
            velocity = (_randint(gen, -s, s), _randint(gen, -s, s))
        return Sprite(mask=mask, colour=colour, start=start, velocity=velocity)


def render_clip(background: Tensor, sprites: Sequence[Sprite], frames: int) -> dict[str, Tensor]:
    """Draw ``sprites`` (later ones on top) over ``background`` for ``frames`` frames."""
    size = background.shape[-1]
    video = background.expand(frames, -1, -1, -1).clone()
    flow = torch.zeros(frames, 2, size, size)
    labels = torch.zeros(frames, size, size, dtype=torch.long)
    for j, sprite in enumerate(sprites, start=1):
        side = sprite.mask.shape[0]
        y0, x0 = sprite.position(0, size)
        for k in range(frames):
            y, x = sprite.position(k, size)
            window = (slice(y, y + side), slice(x, x + side))
            video[k][(slice(None), *window)][:, sprite.mask] = sprite.colour[:, None]
            flow[k, 0][window][sprite.mask] = float(x0 - x)
            flow[k, 1][window][sprite.mask] = float(y0 - y)
            labels[k][window][sprite.mask] = j
    return {"frames": video, "flow": flow, "labels": labels}


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """A uniform integer in [low, high] (both ends included)."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def embedded_photos() -> list[Tensor]:
    """The photos embedded in the scikit-image wheel, (3, H, W) in [-1, 1]."""
    from diffrepro.core.data import sample_photos

    return list(sample_photos())
