"""Emoji sprite videos: the demo's video domain, small enough for a CPU-scale motion generator.

Each clip: a plain background colour (one of a few light colours) and one emoji sprite from a
small fixed vocabulary of the core emoji data (rendered by :func:`diffrepro.core.emoji.render`,
alpha-composited) moving with a constant integer velocity and bouncing elastically off the
walls (:class:`diffrepro.vidm.synthetic.Sprite`'s trajectory). Because the background is plain
and positions are integers, the ground-truth flow from the first frame to frame ``k`` is exact:
``pos(0) - pos(k)`` on the sprite's pixels (alpha > 0.5) at frame ``k``, 0 elsewhere (the
convention of :mod:`diffrepro.vidm.flow`, and what a flow estimator finds on a plain
background, where only the sprite's pixels can be matched). The sprite's top-left position in
every frame is returned too, for trajectory metrics.

Clip ``i`` depends only on ``(seed, i)``: generated at run time, deterministic, never stored.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from diffrepro.vidm.synthetic import Sprite, _randint

# Distinctive, colourful emoji of the train split (names as in diffrepro.core.emoji).
VOCABULARY = (
    "red apple",
    "green apple",
    "banana",
    "grinning face",
    "smiling face with sunglasses",
    "dog face",
    "cat face",
    "fish",
    "penguin",
    "bus",
    "rocket",
    "hamburger",
)
# Light plain backgrounds in [-1, 1] (the judge was trained on white; these stay close to it).
BACKGROUNDS = (
    (1.0, 1.0, 1.0),
    (0.6, 0.6, 0.6),
    (1.0, 0.9, 0.4),
    (0.5, 0.8, 1.0),
    (0.6, 1.0, 0.6),
)


@dataclass(frozen=True)
class EmojiSpritesConfig:
    """``size`` frame side, ``sprite_size`` emoji side (pixels), ``max_speed`` per axis."""

    size: int = 16
    frames: int = 8
    num_clips: int = 512
    sprite_size: int = 10
    max_speed: int = 1
    vocabulary: tuple[str, ...] = VOCABULARY
    backgrounds: tuple[tuple[float, float, float], ...] = BACKGROUNDS
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocabulary", tuple(self.vocabulary))
        object.__setattr__(self, "backgrounds", tuple(tuple(b) for b in self.backgrounds))
        if not 2 <= self.sprite_size < self.size:
            raise ValueError(f"sprite_size {self.sprite_size} must lie in [2, size={self.size})")
        if self.frames < 2 or self.num_clips < 1 or self.max_speed < 1:
            raise ValueError("emoji sprites need frames >= 2, num_clips >= 1 and max_speed >= 1")
        if not self.vocabulary or not self.backgrounds:
            raise ValueError("emoji sprites need at least one emoji and one background")


@functools.lru_cache(maxsize=64)
def sprite_image(name: str, size: int) -> tuple[Tensor, Tensor]:
    """(rgb (3, s, s) in [-1, 1], alpha (s, s) in [0, 1]) of the emoji called ``name``; rendered
    at >= 16 px and box-downsampled to ``size`` (the renderer's minimum is 8 px)."""
    from diffrepro.core import emoji

    image = emoji.render(emoji.find(name), max(16, 2 * size))
    image = image.resize((size, size), Image.BOX)
    rgba = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return rgba[:3] * 2 - 1, rgba[3]


class EmojiSprites(torch.utils.data.Dataset):
    """Clips as dicts: ``frames`` (F, 3, H, W) in [-1, 1], ``flow`` (F, 2, H, W) from frame 0 to
    each frame (pixels), ``labels`` (F, H, W) int64 (1 where the sprite's alpha > 0.5),
    ``positions`` (F, 2) the sprite's top-left (y, x), ``emoji`` the vocabulary index and
    ``background`` the background index."""

    def __init__(self, cfg: EmojiSpritesConfig) -> None:
        self.cfg = cfg
        self.sprites = [sprite_image(name, cfg.sprite_size) for name in cfg.vocabulary]

    def __len__(self) -> int:
        return self.cfg.num_clips

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        cfg = self.cfg
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + index)
        which = _randint(gen, 0, len(cfg.vocabulary) - 1)
        colour = _randint(gen, 0, len(cfg.backgrounds) - 1)
        span = cfg.size - cfg.sprite_size
        start = (_randint(gen, 0, span), _randint(gen, 0, span))
        velocity = (0, 0)
        while velocity == (0, 0):
            s = cfg.max_speed
            velocity = (_randint(gen, -s, s), _randint(gen, -s, s))
        rgb, alpha = self.sprites[which]
        sprite = Sprite(mask=alpha > 0, colour=torch.zeros(3), start=start, velocity=velocity)
        background = torch.tensor(cfg.backgrounds[colour]).view(3, 1, 1)
        clip = render_emoji_clip(background.expand(3, cfg.size, cfg.size), rgb, alpha, sprite, cfg)
        clip["emoji"] = torch.tensor(which)
        clip["background"] = torch.tensor(colour)
        return clip


def render_emoji_clip(
    background: Tensor, rgb: Tensor, alpha: Tensor, sprite: Sprite, cfg: EmojiSpritesConfig
) -> dict[str, Tensor]:
    """Alpha-composite the sprite over ``background`` (3, H, W) along its bouncing trajectory."""
    size, side = cfg.size, cfg.sprite_size
    video = background.expand(cfg.frames, -1, -1, -1).clone()
    flow = torch.zeros(cfg.frames, 2, size, size)
    labels = torch.zeros(cfg.frames, size, size, dtype=torch.long)
    positions = torch.tensor([sprite.position(k, size) for k in range(cfg.frames)])
    y0, x0 = positions[0].tolist()
    for k, (y, x) in enumerate(positions.tolist()):
        window = (slice(y, y + side), slice(x, x + side))
        under = video[k][(slice(None), *window)]
        video[k][(slice(None), *window)] = alpha * rgb + (1 - alpha) * under
        on = alpha > 0.5
        flow[k, 0][window][on] = float(x0 - x)
        flow[k, 1][window][on] = float(y0 - y)
        labels[k][window][on] = 1
    return {"frames": video, "flow": flow, "labels": labels, "positions": positions}
