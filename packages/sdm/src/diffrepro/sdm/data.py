"""SDM's data: the core emoji (the demo's domain: train split to train, held-out split to test),
the scikit-image photos (out-of-domain test crops), and batches of random square crops / mirrored
images (image files, folders and PNGs come from ``diffrepro.core.data``)."""

from __future__ import annotations

import numpy as np
import torch

from diffrepro.core import emoji
from diffrepro.core.data import random_crop, resize_shorter, skimage_photo

# files inside the scikit-image wheel (no download); the demo evaluates on the held-out ones
TRAIN_PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "rocket.jpg",
    "ihc.png",
    "retina.jpg",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
)
HELD_OUT_PHOTOS = ("chelsea.png", "coins.png")


def emoji_images(size: int, split: str, limit: int | None = None) -> torch.Tensor:
    """The core emoji of ``split`` on white, (N, 3, size, size) in [-1, 1].

    With ``limit`` only the first ``limit`` emoji of the split are rendered directly (seconds,
    no cache: the quick demo and tests); without it the core's cached renders are used."""
    if limit is None:
        return emoji.images(size, split)[0]
    rendered = []
    for item in emoji.select(split)[:limit]:
        rgba = torch.from_numpy(np.array(emoji.render(item, size))).permute(2, 0, 1).float()
        rgb, alpha = rgba[:3] / 255.0, rgba[3:] / 255.0
        rendered.append((rgb * alpha + 1.0 - alpha) * 2.0 - 1.0)
    return torch.stack(rendered)


def photos(names: tuple[str, ...], short_side: int = 96) -> list[torch.Tensor]:
    """The named scikit-image photos, resized so the shorter side is ``short_side``."""
    return [resize_shorter(skimage_photo(name), short_side) for name in names]


def random_crops(
    images: list[torch.Tensor],
    count: int,
    size: int,
    generator: torch.Generator,
    *,
    flip: bool = True,
) -> torch.Tensor:
    """``count`` random (3, size, size) crops of randomly chosen images, optionally mirrored."""
    crops = []
    for _ in range(count):
        image = images[int(torch.randint(len(images), (), generator=generator))]
        crop = random_crop(image, size, generator)
        mirror = flip and bool(torch.rand((), generator=generator) < 0.5)
        crops.append(crop.flip(-1) if mirror else crop)
    return torch.stack(crops)
